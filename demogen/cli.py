"""The `demogen` command line. Offline packages (fit/, tqdm) are imported inside the subcommands
that need them, so the runtime stays importable without them."""

import argparse
import json
import sys

from demogen.margins import DEFAULTS


def _add_signature_options(parser):
    parser.add_argument("--n-examples", type=int, default=DEFAULTS["n_examples"],
                        help="training examples sampled per model (default %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                        help="seed of the sample (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"],
                        help="examples per batch (default %(default)s)")
    parser.add_argument("--statistic", choices=["quartile", "moment"], default="quartile")
    parser.add_argument("--unnormalized", action="store_true",
                        help="do not divide by the square root of the total variation")
    parser.add_argument("--signed", action="store_true",
                        help="use all margins, misclassified examples included")
    parser.add_argument("--layers", nargs=3, metavar="LAYER",
                        help="h1 h2 h3 as positions, 'index:ClassName' or Keras layer names, "
                             "instead of the default rule")


def _signature_kwargs(args):
    return {"n_examples": args.n_examples, "seed": args.seed, "batch_size": args.batch_size,
            "statistic": args.statistic, "normalize": not args.unnormalized,
            "signed": args.signed,
            "layers": [int(s) if s.lstrip("-").isdigit() else s for s in args.layers]
            if args.layers else None}


def _print_signature(title, signature):
    print(title)
    stats = [name.split(".", 1)[1] for name in signature.names[:5]]
    print(f"  {'layer':<24}" + "".join(f"{s:>13}" for s in stats))
    for i, layer in enumerate(signature.layers):
        slot = signature.names[5 * i].split(".")[0]
        row = signature.values[5 * i:5 * i + 5]
        print(f"  {slot + ' ' + layer:<24}" + "".join(f"{v:>13.5g}" for v in row))
    for note in signature.notes:
        print(f"  note: {note}")


def cmd_signature(args):
    """Signatures of the models of one PGDL task directory."""
    from tqdm import tqdm

    from demogen import margin_signature, pgdl

    available = pgdl.model_ids(args.task_dir)
    wanted = [m.removeprefix("model_") for m in args.model] if args.model else available
    unknown = [m for m in wanted if m not in available]
    if unknown:
        raise ValueError(f"no model {', '.join(unknown)} in {args.task_dir}; its models are "
                         f"{', '.join(available)}")
    dataset = pgdl.load_dataset(args.task_dir, "train")
    results, failed = [], 0
    for model_id in tqdm(wanted, desc="signatures", unit="model", file=sys.stderr,
                         disable=len(wanted) < 2):
        try:
            model = pgdl.load_model(args.task_dir, model_id,
                                    allow_code_layers=args.allow_code_layers)
            signature = margin_signature(model, dataset, **_signature_kwargs(args))
        except (ValueError, FileNotFoundError) as error:
            failed += 1
            results.append({"model_id": model_id, "error": str(error)})
            print(f"demogen: model {model_id}: {error}", file=sys.stderr)
            continue
        results.append({"model_id": model_id, **signature.as_dict()})
        if not args.json:
            _print_signature(f"model {model_id}", signature)
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
    return 1 if failed else 0


def cmd_demo(args):
    """Train three small CNNs on real Fashion-MNIST with 0, 20 and 40% corrupted labels and
    print their generalization gaps beside their margin signatures."""
    from fit import train as training

    from demogen import margin_signature

    (x, y), (x_test, y_test) = training.fashion_mnist_subset(args.n_train, data_dir=args.data_dir)
    print(f"Fashion-MNIST: {len(x)} training images (seeded subset), {len(x_test)} test images")
    for noise in (0.0, 0.2, 0.4):
        labels = training.corrupt_labels(y, noise)
        model = training.train(training.small_cnn(), x, labels, epochs=args.epochs)
        train_acc = training.accuracy(model, x, labels)
        test_acc = training.accuracy(model, x_test, y_test)
        signature = margin_signature(model, (x, labels))
        _print_signature(f"\n{noise:.0%} corrupted labels: train accuracy {train_acc:.3f}, test "
                         f"accuracy {test_acc:.3f}, gap {train_acc - test_acc:.3f}", signature)
    return 0


def cmd_zoo(args):
    """Train a preset's grid of Fashion-MNIST models into PGDL-format task folders under --out
    (resumable: finished models are never retrained), and write its feature table and each
    task's model_configs.json under --features."""
    from fit import zoo

    rows = zoo.run(args.preset, args.out, workers=args.workers, features=args.features,
                   data_dir=args.data_dir)
    gaps = [row["gap"] for row in rows]
    failed = sum(1 for row in rows if row["error"])
    print(f"{args.preset}: {len(rows)} models in {args.out}, gap from {min(gaps):.3f} to "
          f"{max(gaps):.3f}; features in {args.features}/{args.preset}.csv"
          + (f"; {failed} without features (see the error column)" if failed else ""))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="demogen", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    signature = commands.add_parser("signature", help="margin signatures of a PGDL task's models",
                                    description=cmd_signature.__doc__)
    signature.add_argument("task_dir", help="a PGDL task directory (holding model_* folders)")
    signature.add_argument("--model", nargs="+", metavar="ID",
                           help="bare model ids (17 for model_17); default: all")
    signature.add_argument("--json", action="store_true", help="print a JSON list")
    signature.add_argument("--allow-code-layers", action="store_true",
                           help="allow layers that can carry code (Lambda); only for trusted models")
    _add_signature_options(signature)
    signature.set_defaults(run=cmd_signature)

    demo = commands.add_parser("demo", help="train small models on Fashion-MNIST, print signatures",
                               description=cmd_demo.__doc__)
    demo.add_argument("--data-dir", help="folder with the Fashion-MNIST .gz files (default: "
                                         "$DEMOGEN_DATA, the Debian package, the Keras cache)")
    demo.add_argument("--n-train", type=int, default=2000)
    demo.add_argument("--epochs", type=int, default=30)
    demo.set_defaults(run=cmd_demo)

    zoo = commands.add_parser("zoo", help="train a preset's model pool into PGDL task folders",
                              description=cmd_zoo.__doc__)
    zoo.add_argument("--preset", required=True,
                     help="the pool to train: nin (primary), vgg or tiny (see the README)")
    zoo.add_argument("--out", required=True, help="folder for the task folders (weights live "
                                                  "here; never commit them)")
    zoo.add_argument("--workers", type=int, default=2, help="parallel processes, one thread each")
    zoo.add_argument("--features", default="features_cache",
                     help="folder for the feature table (default %(default)s)")
    zoo.add_argument("--data-dir", help="folder with the Fashion-MNIST .gz files")
    zoo.set_defaults(run=cmd_zoo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"demogen: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
