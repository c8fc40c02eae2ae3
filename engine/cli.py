"""The ``nidecode`` command: argument parsing only; the work is in the modules.

Every :class:`~nidecode.errors.NidecodeError` becomes one line on stderr and
exit status 2 (a parameter named as its flag: :func:`flag`); every
:class:`~nidecode.errors.NidecodeWarning` one line too; an interrupt says
what was kept and exits with 130. The options are checked
(:func:`check_arguments`) before any output directory is claimed or any
cluster starts.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from nidecode import _validation as check
from nidecode.bench import cli as bench_cli
from nidecode.errors import InputError, NidecodeError, NidecodeWarning, ParameterError
from nidecode.solvers import SPHERE_SOLVERS


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="nidecode", description="Dask-parallel fMRI decoding: NIfTI -> Zarr -> "
        "cross-validated linear SVMs -> scores and NIfTI maps.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = commands.add_parser("ingest", help="mask, clean and store subjects (Haxby or BIDS)")
    ingest.add_argument("subject_dirs", nargs="+", metavar="SUBJECT_DIR|BIDS_ROOT",
                        help="directories with bold.nii.gz and labels.txt (the name is the "
                        "id), or one BIDS dataset (with dataset_description.json)")
    ingest.add_argument("--store", required=True, help="Zarr store to write (created if missing)")
    ingest.add_argument("--mask", required=True, metavar="NAME_OR_PATH",
                        help="mask path, or a mask name in each subject directory (mask4_vt)")
    ingest.add_argument("--standardize", choices=("run", "global", "none"), default="run",
                        help="z-score each voxel within each run (default), over all scans "
                        "(like NiftiMasker(standardize='zscore_sample')), or not at all")
    ingest.add_argument("--detrend", action="store_true", help="remove a linear trend")
    ingest.add_argument("--drop-scans", type=int, default=0, metavar="N",
                        help="drop the first N scans of each run (dummy scans)")
    bids = ingest.add_argument_group("BIDS datasets")
    bids.add_argument("--task", help="the task whose runs are ingested (required for BIDS)")
    bids.add_argument("--subjects", metavar="01,02", help="subject labels (default: all)")
    bids.add_argument("--space", help="fMRIPrep output space, e.g. MNI152NLin2009cAsym: read "
                      "derivatives/fmriprep's preprocessed BOLD")
    bids.add_argument("--derivatives", metavar="PATH", help="fMRIPrep derivatives directory "
                      "(default: BIDS_ROOT/derivatives/fmriprep)")
    bids.add_argument("--confounds", metavar="motion,wm_csf",
                      help="fMRIPrep confounds regressed out (nilearn load_confounds strategies)")
    bids.add_argument("--hrf-shift", type=float, default=0.0, metavar="SECONDS",
                      help="label each scan with the event HRF-SHIFT seconds earlier")
    bids.add_argument("--betas", choices=("lsa", "lss"),
                      help="store one GLM beta map per trial (least squares all / separate)")
    _add_cluster(ingest, "several subjects are ingested in parallel, one task each, on a "
                 "LocalCluster of N workers (default: cores, at most one per subject) or ")
    _add_quiet(ingest)

    decode = commands.add_parser("decode", help="cross-validated linear SVMs on a cluster")
    decode.add_argument("store", help="Zarr store written by 'nidecode ingest'")
    decode.add_argument("--out", required=True, help="output directory")
    _add_analysis(decode)
    _add_cross(decode)
    _add_scoring(decode)
    _add_per_fold(decode, shown=False)
    _add_cluster(decode)
    _add_quiet(decode)

    light = commands.add_parser("searchlight", help="accuracy maps of spheres around every voxel")
    light.add_argument("store", help="Zarr store written by 'nidecode ingest'")
    light.add_argument("--out", required=True, help="output directory")
    _add_analysis(light)
    light.add_argument("--radius", type=float, required=True, metavar="MM",
                       help="sphere radius in millimetres (world space, through the affine)")
    light.add_argument("--process-mask", metavar="PATH",
                       help="NIfTI on the subjects' grid: sphere centres (default: the mask)")
    light.add_argument("--solver", choices=tuple(SPHERE_SOLVERS), default="batched",
                       help="batched: every fold solved exactly from the sphere's all-scans "
                       "solution, libsvm's own path where a test scan is a near tie (default); "
                       "libsvm: libsvm's path for every fit, SVC's iterates (about 6x slower); "
                       "sklearn: SVC one sphere at a time (slow, for verification); other "
                       "--classifier: batched is its closed form where it has one, sklearn its "
                       "estimator one sphere at a time, libsvm refused")
    light.add_argument("--scoring", default="accuracy", metavar="accuracy,balanced_accuracy,"
                       "roc_auc", help="metrics mapped, any of these, comma-separated (default "
                       "accuracy; its maps are always written): one map per metric")
    _add_class_weight(light)
    _add_cross(light)
    _add_per_fold(light)
    _add_cluster(light)
    _add_quiet(light)

    permute = commands.add_parser("permute", help="permutation tests: p-values of accuracies")
    permute.add_argument("store", help="Zarr store written by 'nidecode ingest'")
    permute.add_argument("--out", required=True, help="output directory")
    permute.add_argument("--n-permutations", type=int, required=True, metavar="N",
                         help="label permutations within runs (blocks kept whole) per pair")
    _add_analysis(permute)
    _add_cross(permute)
    _add_scoring(permute)
    _add_per_fold(permute, shown=False)
    permute.add_argument("--searchlight", action="store_true",
                         help="permute searchlight maps (needs --radius): voxel-wise p-values, "
                         "corrected with the maximum statistic")
    permute.add_argument("--radius", type=float, metavar="MM", help="searchlight radius (mm)")
    permute.add_argument("--seed", type=int, default=0, help="seed of the permutations")
    permute.add_argument("--solver", choices=tuple(SPHERE_SOLVERS),
                         default="batched",
                         help="Gram matrix reused by every permutation and, for searchlight "
                         "maps, the solvers of 'nidecode searchlight' (default: batched); "
                         "sklearn: SVC refitted")
    _add_cluster(permute)
    _add_quiet(permute)

    _add_group(commands)

    report = commands.add_parser("report", help="a self-contained HTML page of a run's results")
    report.add_argument("out", help="output directory of decode, searchlight or permute")
    report.add_argument("--anat", metavar="PATH", help="background image of the brain maps "
                        "(default: the run's mean EPI when known)")
    report.add_argument("--mask", metavar="PATH", help="mask drawn as a region of interest "
                        "(default: the first subject's stored mask)")
    report.add_argument("--bench", metavar="DIR", help="a 'nidecode bench' directory whose "
                        "scaling figures are added")
    _add_quiet(report)

    demo = commands.add_parser("demo", help="a study end to end: ingest, decode, table, report")
    demo.add_argument("--out", default="nidecode-demo", help="directory for data, store and "
                      "results (default: ./nidecode-demo)")
    demo.add_argument("--data", choices=("synthetic", "haxby"), default="synthetic",
                      help="synthetic: generated Haxby-like subjects (default); haxby: the "
                      "real Haxby 2001 slice shipped with nidecode, as one subject")
    demo.add_argument("--subjects", type=int, default=3,
                      help="synthetic subjects (default 3; --data haxby has one)")
    _add_cluster(demo)
    _add_quiet(demo)

    compile_kernels = commands.add_parser(
        "compile", help="compile the numba kernels into numba's cache (NUMBA_CACHE_DIR) "
        "before the first run", description="Call every compiled kernel (searchlight "
        "solvers, libsvm's replica, GaussianNB, LDA, the ROI decode, group inference) once on "
        "a tiny problem so that numba's cache holds them: run it where NUMBA_CACHE_DIR points "
        "(an image build, a job before the workers start).")
    _add_quiet(compile_kernels)

    bench_cli.add_parser(commands)
    for name, command in commands.choices.items():
        if name not in ("bench", "compile"):
            _add_storage_options(command)
    return parser


def _add_storage_options(parser: argparse.ArgumentParser) -> None:
    """``--storage-options JSON``: for every fsspec URL the command reads or writes."""
    parser.add_argument("--storage-options", metavar="JSON",
                        help="options of the file systems of s3://, gs://, az:// paths, e.g. "
                        "'{\"anon\": true}' or '{\"client_kwargs\": {\"endpoint_url\": "
                        "\"http://...\"}}' (credentials come from the environment otherwise)")


def _add_group(commands) -> None:
    """``nidecode group``: group inference on the searchlight maps of a run."""
    group = commands.add_parser("group", help="group inference on searchlight maps: cluster "
                                "tests (Stelzer), TFCE, prevalence")
    group.add_argument("directory", metavar="DIR", help="output of 'nidecode permute "
                       "--searchlight' (or of 'nidecode searchlight' for --method tfce)")
    group.add_argument("--method", required=True, choices=("stelzer", "tfce", "prevalence"),
                       help="stelzer: cluster sizes from draws of permutation maps; tfce: "
                       "sign flips with TFCE (nilearn); prevalence: Allefeld's minimum statistic")
    group.add_argument("--n-draws", type=int, default=10_000, metavar="N",
                       help="draws of one permutation map per subject, or sign flips for tfce "
                       "(default 10000)")
    group.add_argument("--cluster-p", type=float, default=0.001, metavar="P",
                       help="stelzer: voxel-wise threshold of the clusters (default 0.001)")
    group.add_argument("--alpha", type=float, default=0.05,
                       help="level of TFCE clusters and of the prevalence bound (default 0.05)")
    group.add_argument("--connectivity", type=int, default=6, metavar="6|18|26",
                       help="neighbours joining a cluster: faces (6, default), and edges (18), "
                       "and corners (26)")
    group.add_argument("--seed", type=int, default=0, help="seed of the draws")
    group.add_argument("--out", help="results go to OUT/group/ (default: DIR/group/)")
    group.add_argument("--overwrite", action="store_true",
                       help="replace a group run made from other inputs in OUT/group")
    _add_cluster(group)
    _add_quiet(group)


def _add_analysis(parser: argparse.ArgumentParser) -> None:
    """The options every analysis shares: which pairs, cross-validation, C, --overwrite."""
    parser.add_argument("--categories", metavar="A,B[,...]",
                        help="every pair among these categories, e.g. face,cat (default: "
                        "every pair of each subject's categories but rest)")
    parser.add_argument("--cv", default="logo", metavar="logo|kfold:K|loso",
                        help="leave one run out (default), or K-fold over scans (leaks "
                        "across neighbouring scans of a run: optimistic); loso: leave one "
                        "subject out (subjects on one grid)")
    parser.add_argument("--C", type=float, default=1.0, help="SVM penalty (default 1.0)")
    _add_classifier(parser)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace results of other parameters in --out")


def _add_cross(parser: argparse.ArgumentParser) -> None:
    """Cross-decoding: ``--train-categories`` and ``--test-categories`` (checked by the API)."""
    cross = parser.add_argument_group("cross-decoding (train on some categories, test on "
                                      "others; not with --categories)")
    cross.add_argument("--train-categories", metavar="A1,B1[,...]",
                       help="every pair among these is trained on their scans ...")
    cross.add_argument("--test-categories", metavar="A2,B2[,...]",
                       help="... and tested on the scans of these, in the same order (A2 read "
                       "as A1); --cv none: every training scan against every test scan")


def _add_classifier(parser: argparse.ArgumentParser) -> None:
    """``--classifier`` and ``--shrinkage`` (checked by :mod:`nidecode._validation`, not by
    argparse's choices: a bad value is one line)."""
    parser.add_argument("--classifier", default="svc", metavar="svc|lda|gnb|logreg",
                        help="svc: SVC(kernel='linear', C) (default); lda: "
                        "LinearDiscriminantAnalysis(solver='lsqr', shrinkage); gnb: GaussianNB(); "
                        "logreg: LogisticRegression(C) (see README, Classifiers)")
    parser.add_argument("--shrinkage", metavar="auto|FLOAT",
                        help="lda only: covariance shrinkage, 'auto' (Ledoit-Wolf, the "
                        "default) or a float in [0, 1]")


def shrinkage_value(text: str | None) -> str | float | None:
    """``--shrinkage``'s text as the API takes it: a float if it reads as one."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _add_scoring(parser: argparse.ArgumentParser) -> None:
    """``--scoring`` and ``--class-weight`` (checked by :mod:`nidecode._validation`)."""
    parser.add_argument("--scoring", default="accuracy", metavar="accuracy,balanced_accuracy,"
                        "roc_auc", help="metrics per fold, any of these, comma-separated "
                        "(default accuracy); prefer balanced_accuracy or roc_auc when the "
                        "classes are unbalanced")
    _add_class_weight(parser)


def _add_class_weight(parser: argparse.ArgumentParser) -> None:
    """``--class-weight`` (checked by :mod:`nidecode._validation`)."""
    parser.add_argument("--class-weight", default="none", metavar="balanced|none",
                        help="'balanced': each class's SVM penalty scaled by n_samples / "
                        "(2 * n_class_samples) of the training fold (default none)")


def _add_per_fold(parser: argparse.ArgumentParser, shown: bool = True) -> None:
    """``--per-fold``: written by searchlight; elsewhere accepted, then refused in one line."""
    parser.add_argument("--per-fold", action="store_true",
                        help="also write each metric's fold scores as a 4D image "
                        "({subject}_{pair}_{metric}_folds.nii.gz, one volume per fold)"
                        if shown else argparse.SUPPRESS)


def _add_cluster(parser: argparse.ArgumentParser, what: str = "") -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help=what or "LocalCluster of N single-threaded "
                       "worker processes (default: the number of cores)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="attach to a running dask scheduler, e.g. tcp://127.0.0.1:8786")


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar or messages")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nidecode`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            # The engine's warnings are one line each on stderr, whatever the filters.
            warnings.simplefilter("always", NidecodeWarning)
            warnings.showwarning = _show_warning
            check_arguments(args)
            if getattr(args, "storage_options", None) is not None:
                from nidecode import fs

                fs.set_storage_options(args.storage_options)  # inherited by local workers
            return COMMANDS[args.command](args)
    except NidecodeError as error:
        print(f"nidecode: error: {_reword(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nidecode: interrupted; results saved so far are kept: run the same command "
              "again to resume", file=sys.stderr)
        return 130


def flag(parameter: str) -> str:
    """The command-line flag of an API parameter: ``n_permutations`` -> ``--n-permutations``."""
    return "--" + parameter.replace("_", "-")


def _reword(error: NidecodeError) -> str:
    """The one-line message of an error; a parameter's is worded with its flag."""
    if not isinstance(error, ParameterError):
        return str(error)
    value = f"{error.value:g}" if isinstance(error.value, float) else str(error.value)
    return (f"{flag(error.parameter)} {value}: must be {error.rule}"
            + (f"; {error.hint}" if error.hint else ""))


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our warnings as one line; any other warning as Python shows it."""
    if issubclass(category, NidecodeWarning):
        print(f"nidecode: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def check_arguments(args: argparse.Namespace) -> None:
    """Check every numeric option the command has, before anything is claimed or started.

    The API functions check them again (with the same rules, in
    :mod:`nidecode._validation`); checking here first means a bad
    ``--workers`` cannot leave a claimed ``--out`` behind.
    """
    command = args.command
    if command not in ("ingest", "decode", "searchlight", "permute", "demo", "group"):
        return  # 'bench' has options of its own ('--workers 1,2,4')
    checks = {"C": check.check_C, "radius": check.check_radius, "cv": check.check_cv,
              "n_permutations": check.check_n_permutations, "seed": check.check_seed,
              "workers": check.check_workers, "drop_scans": check.check_drop_scans,
              "scoring": check.check_scoring, "class_weight": check.check_class_weight}
    if getattr(args, "train_categories", None) or getattr(args, "test_categories", None):
        checks["cv"] = check.check_cross_cv  # cross-decoding also takes --cv none
    if command in ("decode", "permute", "searchlight") and check.is_loso(getattr(args, "cv", None)):
        del checks["cv"]  # leave one subject out: checked by the API with the store
    for name, check_value in checks.items():
        value = getattr(args, name, None)
        if value is not None:
            check_value(value, command)
    if getattr(args, "classifier", None) is not None:
        check.check_classifier_options(args.classifier, shrinkage_value(args.shrinkage),
                                       check.check_class_weight(
                                           getattr(args, "class_weight", None), command),
                                       command, getattr(args, "solver", None))
    if getattr(args, "per_fold", False) and command != "searchlight":
        raise InputError(f"--per-fold: only 'nidecode searchlight' writes per-fold maps; "
                         f"drop it from 'nidecode {command}'")
    if getattr(args, "hrf_shift", None) is not None:
        check.check_float(args.hrf_shift, "hrf_shift", command)
    if command == "demo":
        check.check_int(args.subjects, "subjects", command, minimum=1)


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)


def _ingest(args: argparse.Namespace) -> int:
    from nidecode.cluster import default_workers, get_client
    from nidecode.ingest import ingest_subject
    from nidecode.run import ingest_sources_on_cluster

    started = time.perf_counter()
    sources = _ingest_sources(args)  # every input checked before a cluster starts
    settings = {"standardize": args.standardize, "detrend": args.detrend,
                "drop_scans": args.drop_scans, "betas": args.betas}
    if len(sources) == 1 and args.workers is None and args.scheduler is None:
        reports = [ingest_subject(sources[0], args.store, **settings)]
    else:
        workers = args.workers or (None if args.scheduler else
                                   min(default_workers(), len(sources)))
        with get_client(workers=workers, scheduler=args.scheduler) as client:
            reports = ingest_sources_on_cluster(sources, args.store, client,
                                                progress=not args.quiet, **settings)
    for report in reports:
        if report["n_constant_voxels"]:
            _say(args, f"note: {report['subject']}: {report['n_constant_voxels']} of "
                 f"{report['n_voxels']} voxels are constant within a run; they are zero "
                 f"there after z-scoring (no NaN)")
    _say(args, f"ingested {len(reports)} subject(s) into {args.store} in "
         f"{time.perf_counter() - started:.1f} s")
    return 0


def _ingest_sources(args: argparse.Namespace) -> list:
    from nidecode import fs
    from nidecode.ingest import find_bids_subjects, find_subjects

    roots = [path if fs.is_url(path) else Path(fs.local(path)) for path in args.subject_dirs]
    if len(roots) == 1 and fs.isfile(fs.join(roots[0], "dataset_description.json")):
        if not args.task:
            raise InputError(f"{roots[0]}: a BIDS dataset; give --task TASK (the task whose "
                             f"runs to ingest)")
        return find_bids_subjects(roots[0], args.task, args.mask,
                                  subjects=_split(args.subjects), space=args.space,
                                  confounds=_split(args.confounds), hrf_shift=args.hrf_shift,
                                  derivatives=args.derivatives, betas=args.betas)
    bids_only = [name for name in ("task", "subjects", "space", "derivatives", "confounds",
                                   "betas") if getattr(args, name)]
    if bids_only or args.hrf_shift:
        raise InputError(f"--{(bids_only or ['hrf-shift'])[0]}: only for a BIDS dataset (a "
                         f"directory with dataset_description.json); drop it for the Haxby "
                         f"layout")
    return find_subjects(roots, args.mask)


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [item.strip() for item in text.split(",") if item.strip()]


def _decode(args: argparse.Namespace) -> int:
    from nidecode.analyses.plan import parse_categories, parse_category_list

    summary = _run_decode(args, args.store, args.out, parse_categories(args.categories),
                          args.cv, args.C, args.overwrite, scoring=args.scoring,
                          class_weight=args.class_weight, classifier=args.classifier,
                          shrinkage=shrinkage_value(args.shrinkage),
                          train_categories=parse_category_list(args.train_categories),
                          test_categories=parse_category_list(args.test_categories))
    if not args.quiet:
        _print_accuracies(summary)
    return 0


def _run_decode(args, store, out, categories, cv, C, overwrite, **options):
    from nidecode.analyses.decode import execute_decode, prepare_decode

    run = prepare_decode(store, out, categories=categories, cv=cv, C=C, overwrite=overwrite,
                         **options)
    return _execute(args, execute_decode, run)


def _execute(args: argparse.Namespace, execute, run):
    """``execute(run, client)`` on the cluster the arguments (or the config) name."""
    from nidecode.cluster import describe, get_client

    for note in getattr(run, "notes", ()):  # what the plan leaves out, before the cluster
        _say(args, f"note: {note}")
    with get_client(workers=args.workers, scheduler=args.scheduler) as client:
        info = describe(client)
        _say(args, f"dask: {info['n_workers']} worker(s) at {info['scheduler']}"
             + (f", dashboard {info['dashboard']}" if info["dashboard"] else ""))
        return execute(run, client, progress=not args.quiet)


def _searchlight(args: argparse.Namespace) -> int:
    from nidecode.analyses.plan import parse_categories, parse_category_list
    from nidecode.analyses.searchlight import execute_searchlight, prepare_searchlight

    run = prepare_searchlight(args.store, args.out, radius=args.radius,
                              categories=parse_categories(args.categories),
                              process_mask=args.process_mask, cv=args.cv, C=args.C,
                              solver=args.solver, overwrite=args.overwrite,
                              scoring=args.scoring, per_fold=args.per_fold,
                              classifier=args.classifier,
                              shrinkage=shrinkage_value(args.shrinkage),
                              class_weight=args.class_weight,
                              train_categories=parse_category_list(args.train_categories),
                              test_categories=parse_category_list(args.test_categories))
    table = _execute(args, execute_searchlight, run)
    if not args.quiet:
        print(table.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    return 0


def _permute(args: argparse.Namespace) -> int:
    from nidecode.analyses.permute import execute_permute, prepare_permute
    from nidecode.analyses.plan import parse_categories, parse_category_list

    if args.searchlight != (args.radius is not None):
        raise InputError("--searchlight and --radius: give both for searchlight permutations, "
                         "or neither for ROI decoding")
    run = prepare_permute(args.store, args.out, n_permutations=args.n_permutations,
                          categories=parse_categories(args.categories), cv=args.cv, C=args.C,
                          seed=args.seed, solver=args.solver, radius=args.radius,
                          overwrite=args.overwrite, scoring=args.scoring,
                          class_weight=args.class_weight, classifier=args.classifier,
                          shrinkage=shrinkage_value(args.shrinkage),
                          train_categories=parse_category_list(args.train_categories),
                          test_categories=parse_category_list(args.test_categories))
    table = _execute(args, execute_permute, run)
    if not args.quiet:
        print(table.to_string(index=False, float_format=lambda value: f"{value:.4g}"))
    return 0


def _group(args: argparse.Namespace) -> int:
    from nidecode.analyses.group import execute_group, prepare_group

    run = prepare_group(args.directory, method=args.method, out=args.out,
                        n_draws=args.n_draws, cluster_p=args.cluster_p, seed=args.seed,
                        connectivity=args.connectivity, alpha=args.alpha,
                        overwrite=args.overwrite)
    table = _execute(args, execute_group, run)
    if not args.quiet:
        print(table.to_string(index=False, float_format=lambda value: f"{value:.4g}")
              if len(table) else "no cluster")
        print(f"results in {run.output.path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from nidecode.report import write_report

    path = write_report(args.out, anat=args.anat, mask=args.mask, bench_dir=args.bench)
    _say(args, f"report written to {path}")
    return 0


def _print_accuracies(summary) -> None:
    from nidecode.results import accuracy_matrix, common_chance

    chance = common_chance(summary)
    print("Mean cross-validated accuracy " + (
        f"(chance {chance:g}):" if chance is not None else
        "(chance: the majority-class rate of the test folds, per pair in column chance):"))
    print(accuracy_matrix(summary).to_string(float_format=lambda value: f"{value:.3f}"))


def _demo(args: argparse.Namespace) -> int:
    from nidecode.ingest import ingest

    out = Path(args.out)
    if args.data == "haxby":
        from nidecode.datasets import load_haxby_slice

        # One real subject: copies of it would be no replicates for the group test.
        subject_dirs, mask = [load_haxby_slice()], "mask"
        _say(args, f"the real Haxby 2001 slice ({subject_dirs[0]}) as one subject")
    else:
        from nidecode.synth import make_dataset

        _say(args, f"generating {args.subjects} synthetic subjects in {out / 'data'}")
        subject_dirs, mask = make_dataset(out / "data", n_subjects=args.subjects), "mask4_vt"
    ingest(subject_dirs, out / "store.zarr", mask)
    _say(args, f"ingested into {out / 'store.zarr'}; decoding all category pairs")
    summary = _run_decode(args, out / "store.zarr", out / "results", None, "logo", 1.0, True)
    _print_accuracies(summary)
    from nidecode.report import write_report

    report = write_report(out / "results")
    _say(args, f"scores, summary and weight maps in {out / 'results'}; open {report}")
    return 0


def _compile(args: argparse.Namespace) -> int:
    from nidecode.precompile import cache_location, compile_all
    from nidecode.solvers.warm import check_cache_directory

    check_cache_directory()  # the one error line comes before any output
    _say(args, "compiling nidecode's numba kernels (about a minute on an empty cache)")
    width = 34

    def show(group: dict) -> None:
        if not args.quiet:
            print(f"{group['group']:<{width}} compiled {group['compiled']}, "
                  f"loaded {group['loaded']}, {group['seconds']:.1f} s", flush=True)

    compile_all(progress=show)
    directories, chosen = cache_location()
    if not args.quiet:
        where = ", ".join(str(directory) for directory in directories)
        print(f"numba cache: {where}" + (" (NUMBA_CACHE_DIR)" if chosen else
                                         " (numba's default; NUMBA_CACHE_DIR moves it)"))
    return 0


COMMANDS = {"ingest": _ingest, "decode": _decode, "searchlight": _searchlight,
            "permute": _permute, "group": _group, "report": _report, "demo": _demo,
            "bench": bench_cli.run, "compile": _compile}


if __name__ == "__main__":
    sys.exit(main())
