"""The analyses: decode, searchlight and permute, planned from the store's designs.

Each analysis has a ``prepare_*`` step that checks every input, plans the
work and claims the output directory on the client, before any cluster
starts (the part they share is :mod:`nidecode.analyses._prepare`), and an
``execute_*`` step that submits the tasks (:mod:`nidecode.analyses.tasks`,
pure functions the workers run), saves results as they arrive and writes
the final files. :mod:`nidecode.analyses.plan` turns designs into jobs.
"""
