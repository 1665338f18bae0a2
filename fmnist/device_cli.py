"""fmnist-bench pack and fmnist-bench merge: benchmark on a device by hand (one file there, its
JSON back), for a device that is not a worker of a cluster (docs/usage.md: "Benchmark on your device")."""
from __future__ import annotations

from pathlib import Path

from fmnist import storage
from fmnist.arguments import OneLineParser, user_model_options
from fmnist.cli import MODEL_HELP, _checked, _list, _models, _results, _writable
from fmnist.guard import guarded
from fmnist.plan import DEVICE_FORMATS


@guarded
def pack_main(argv) -> int:
    """fmnist-bench pack: one file to benchmark on a device without TensorFlow (see docs/usage.md)."""
    from fmnist.export import list_formats
    parser = OneLineParser(prog="fmnist-bench pack", description=pack_main.__doc__)
    _list(parser, "--model", "name", f"models to pack (default: all): {MODEL_HELP}")
    user_model_options(parser)
    _list(parser, "--format", "format", f"formats to pack (default: {' '.join(DEVICE_FORMATS)})")
    _list(parser, "--variant", "variant", "variants to pack (default: base)")
    parser.add_argument("--out", type=Path, default=Path("fmnist-bundle.pyz"), help="the bundle file to write")
    parser.add_argument("--exports", type=Path, default=None, metavar="DIR", help="where the artifacts are")
    parser.add_argument("--data-dir", type=Path, default=None, help="Fashion-MNIST IDX files (default: searched)")
    args = parser.parse_args(argv)
    formats = _checked(parser, list_formats(), args.format, "format") or list(DEVICE_FORMATS)
    names = _models(parser, args.model, args)
    if args.out.is_dir():
        parser.error(f"argument --out: {args.out} is a folder; give a file name such as bundle.pyz")
    _writable(parser, args.out.parent if str(args.out.parent) else Path("."), "--out")

    from fmnist import bundle, data, variants
    from fmnist.registry import UnknownName
    try:
        wanted = [variants.get_variant(v) for v in dict.fromkeys(args.variant or ["base"])]
    except UnknownName as e:
        parser.error(str(e))
    exports = args.exports or storage.DEFAULT_EXPORTS
    folders = [storage.model_dir(exports, n, v.name) for n in names for v in dict.fromkeys([variants.BASE, *wanted])]
    images, labels = data.load_test_set(args.data_dir)
    index = bundle.pack(folders, formats, args.out, images, labels, names, exports)
    artifacts = sum(name.endswith("/manifest.json") for name in index["files"])
    print(f"wrote {args.out}: {args.out.stat().st_size / 1e6:.1f} MB (SHA-256 {storage.file_sha256(args.out)}), "
          f"{artifacts} artifacts of {len(names)} models; on the device: python3 {args.out.name} --out RESULT.json "
          f"--label NAME")
    return 0


@guarded
def merge_main(argv) -> int:
    """fmnist-bench merge: add device results (from a bundle run) to results/, under their machine."""
    parser = OneLineParser(prog="fmnist-bench merge", description=merge_main.__doc__)
    parser.add_argument("files", nargs="+", type=Path, metavar="DEVICE.json")
    parser.add_argument("--results", type=Path, default=Path("results"), help="the results folder to merge into")
    parser.add_argument("--exports", type=Path, default=None, metavar="DIR", help="where the artifacts are")
    args = parser.parse_args(argv)
    exports = args.exports or storage.DEFAULT_EXPORTS
    _results(parser, args, exports)

    import json

    from fmnist import bundle, report
    host = args.results / "benchmark.json"
    try:
        document = json.loads(host.read_text())
    except (OSError, ValueError):
        raise bundle.BundleError(f"{host}: no host benchmark to merge into; run fmnist-bench first") from None
    results = [bundle.read_device_result(path, exports) for path in args.files]  # all checked before any is kept
    report.publish_benchmark(document, args.results, new_devices=results, exports=exports)
    for result in results:
        ok = sum(r["status"] == "ok" for r in result["records"])
        print(f"merged {result['machine']['label']}: {ok} rows measured ({result['machine']['cpu']}, "
              f"{result['machine']['architecture']}), as reported by that machine; see {args.results}/devices.md")
    return 0
