"""The ``fraud`` command: one entry point for every process of the system.

fraud kafka start|stop|status   local single-node KRaft broker
fraud registry start|stop       local schema registry (Apicurio, for the wire format)
fraud schemas register          register schemas/ with the schema registry, checked first
fraud topics                    create the topics
fraud worker                    a pipeline worker (Faust)
fraud simulate                  simulated upstream traffic and delayed labels
fraud monitor                   the Dash monitor
fraud demo                      all of the above, until Ctrl-C
fraud soak                      a long run with kills and a broker restart, then every id counted
fraud settings                  every setting, its environment variable and value

The module is longer than 400 lines because it holds every subcommand's arguments in one parser,
so that ``fraud --help`` and the code read alike; each command's work lives in its own module.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pipeline.config import ConfigurationError, Settings, load_settings

log = logging.getLogger("fraud")


def _local_kafka(settings: Settings):  # type: ignore[no-untyped-def]
    from pipeline.tools.local_kafka import LocalKafka

    return LocalKafka(settings.local_kafka_version, settings.local_kafka_port, settings.local_kafka_home)


def cmd_kafka(settings: Settings, args: argparse.Namespace) -> int:
    broker = _local_kafka(settings)
    if args.action == "start":
        print(broker.start())
    elif args.action == "stop":
        print("stopped" if broker.stop() else "not running")
    elif args.action == "fetch":
        print(broker.fetch())
    else:
        pid = broker.pid()
        print(f"running on {broker.bootstrap_servers} (pid {pid})" if pid else "not running")
        return 0 if pid else 3
    return 0


def _local_registry(settings: Settings):  # type: ignore[no-untyped-def]
    from pipeline.tools.local_registry import LocalRegistry

    return LocalRegistry(settings.local_registry_port, settings.local_kafka_home)


def cmd_registry(settings: Settings, args: argparse.Namespace) -> int:
    registry = _local_registry(settings)
    if args.action == "start":
        print(registry.start())
    elif args.action == "stop":
        print("stopped" if registry.stop() else "not running")
    elif args.action == "fetch":
        print(registry.fetch())
    else:
        pid = registry.pid()
        print(f"running at {registry.url} (pid {pid})" if pid else "not running")
        return 0 if pid else 3
    return 0


def cmd_schemas(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from pipeline.contracts.json_schemas import latest_version
    from pipeline.contracts.registration import plan, register
    from pipeline.contracts.schema_registry import RegistryError, SchemaRegistry

    if not settings.schema_registry_url:
        raise RegistryError("set FRAUD_SCHEMA_REGISTRY_URL (the registry's Confluent-compatible API)")
    registry = SchemaRegistry(settings.schema_registry_url, settings.schema_registry_timeout_seconds)
    kinds = set(settings.topic_kinds.values())
    schemas = {
        kind: json.loads(path.read_text(encoding="utf-8"))
        for kind in kinds
        if args.dir and (path := args.dir / f"{kind}.v{latest_version(kind)}.schema.json").exists()
    }
    steps = plan(registry, settings.topic_kinds, schemas)
    for step in steps:
        print(f"{step.subject}: {step.state}" + (f": {step.reason}" if step.reason else ""))
    if any(step.state == "refused" for step in steps):
        print("fraud schemas: nothing registered: a change above breaks compatibility", file=sys.stderr)
        return 1
    if args.check:
        return 0
    for step in register(registry, steps, settings.schema_registry_compatibility):
        if step.state == "registered":
            print(f"{step.subject}: registered (id {step.schema_id})")
    return 0


def cmd_topics(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.worker.topics import ensure_topics

    created = ensure_topics(settings)
    print("created: " + (", ".join(created) or "nothing (all exist)"))
    return 0


class PortInUseError(RuntimeError):
    """A process's HTTP port is taken; the message names it and its setting."""


def _check_port(host: str, port: int, setting: str) -> None:
    """Fail now, in one line, rather than later inside the web server with a traceback."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise PortInUseError(f"cannot listen on {host}:{port} ({exc.strerror}); set {setting}") from None


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.detection.features import FEATURE_NAMES
    from pipeline.detection.rules import load_rules, seed_rules_file
    from pipeline.worker.run import run_worker
    from pipeline.worker.topics import check_broker

    if settings.rules_file_seed:
        seed_rules_file(settings.rules_file)
    load_rules(settings.rules_file, FEATURE_NAMES)  # a bad rule file fails before anything starts
    _check_port(settings.metrics_bind, settings.worker_web_port, "FRAUD_WORKER_WEB_PORT")
    check_broker(settings)
    run_worker(settings, loglevel=args.loglevel)
    return 0


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry, start_http_server

    from pipeline.tools.simulator.producer import TrafficProducer
    from pipeline.worker.topics import ensure_topics

    overrides = {"simulator_rate": args.rate} if args.rate else {}
    if overrides:
        settings = settings.model_copy(update=overrides)
    registry = CollectorRegistry()
    port = settings.simulator_metrics_port if args.metrics_port is None else args.metrics_port
    if port:  # first: a port already taken stops the simulator before it touches Kafka
        try:
            start_http_server(port, addr=settings.metrics_bind, registry=registry)
        except OSError as exc:
            print(
                f"fraud: cannot serve the simulator's metrics on {settings.metrics_bind}:{port}: {exc} "
                "(FRAUD_SIMULATOR_METRICS_PORT or --metrics-port; 0 serves none)",
                file=sys.stderr,
            )
            return 2
        log.info("simulator metrics at http://%s:%d/metrics", settings.metrics_bind, port)
    ensure_topics(settings, include_internal=False)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops cleanly, like Ctrl-C
    producer = TrafficProducer(settings, registry)
    report = producer.run(count=args.count, duration=args.duration, realtime=not args.fast)
    print(
        f"produced {report.transactions} transactions ({report.frauds} fraud), {report.labels} labels, "
        f"{report.delivery_errors} delivery errors"
    )
    return 1 if report.delivery_errors else 0


def cmd_generate(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.tools.simulator.dataset import write_dataset

    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC).timestamp() if args.start else None
    count = write_dataset(args.out, settings, days=args.days, rate=args.rate, start=start)
    print(f"wrote {count} transactions with ground truth to {args.out}")
    return 0


def cmd_backtest(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.tools.backtest.command import run_backtest

    return run_backtest(settings, args)


def cmd_model(settings: Settings, args: argparse.Namespace) -> int:
    import shutil

    from pipeline.detection.snapshots import SnapshotError
    from pipeline.wiring import snapshot_store

    store = snapshot_store(settings)
    if args.action != "list" and not args.name:
        print(f"fraud: model {args.action} needs a snapshot name (see `fraud model list`)", file=sys.stderr)
        return 2
    try:
        if args.action == "list":
            rows = store.describe()
            if not rows:
                print(f"no snapshots in {store.directory}")
            for row in rows:
                print(
                    f"{row['name']:48} labels={row['labels_learnt']!s:>8}  {row['saved_at']}  {row['status']}"
                )
        elif args.action == "export":
            source = store.directory / args.name
            store.load(source)  # refuses a corrupt or tampered file
            args.to.mkdir(parents=True, exist_ok=True)
            for path in (source, source.with_suffix(".json")):
                shutil.copy2(path, args.to / path.name)
            print(f"exported {args.name} to {args.to}")
        else:
            print(
                f"{args.name} is the newest snapshot again as {store.rollback(args.name).name}; "
                "restart the workers to load it"
            )
    except SnapshotError as exc:
        print(f"fraud: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_monitor(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.server import run_monitor
    from pipeline.worker.topics import check_broker

    _check_port(settings.monitor_host, settings.monitor_port, "FRAUD_MONITOR_PORT")
    check_broker(settings)
    run_monitor(settings, debug=args.debug)
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.tools.demo import run_demo

    return run_demo(settings, rate=args.rate)


def _rates(text: str) -> tuple[float, ...]:
    """'100,200,400' -> (100.0, 200.0, 400.0); '' -> ()."""
    try:
        rates = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of rates: {text!r}") from None
    if any(rate <= 0 for rate in rates):
        raise argparse.ArgumentTypeError(f"rates must be positive: {text!r}")
    return rates


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    if args.recovery:
        return _bench_recovery(settings, args)
    from pipeline.tools.bench.runner import BenchOptions, run_benchmark

    options = BenchOptions(
        transactions=args.transactions,
        partitions=args.partitions,
        latency_seconds=args.latency_seconds,
        warmup_transactions=args.warmup,
        profile=args.profile,
        one_worker_only=args.one_worker_only,
        latency_only=args.latency_only,
        latency_rates=args.latency_rates,
        out=args.out,
    )
    run_benchmark(settings, options)
    if args.one_worker_only or args.latency_only:
        print(f"figures: {args.out / 'quick.json'}")
    else:
        print(
            f"figures: {args.out / 'throughput.json'}, "
            f"charts: {args.out / 'throughput.svg'}, {args.out / 'latency.svg'}, "
            f"{args.out / 'latency-by-rate.svg'}"
        )
    return 0


def _bench_recovery(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.tools.bench.recovery import RecoveryOptions, run_recovery_benchmark

    options = RecoveryOptions(counts=args.recovery_counts, partitions=args.partitions, out=args.out)
    run_recovery_benchmark(settings, options)
    print(f"figures: {args.out / 'recovery.json'}, chart: {args.out / 'recovery.svg'}")
    return 0


def cmd_soak(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.tools.soak.runner import SoakOptions, run_soak

    options = SoakOptions(
        minutes=args.minutes,
        rate=args.rate,
        kill_every_minutes=args.kill_every,
        restart_broker=not args.no_broker_restart,
        partitions=args.partitions,
        sample_seconds=args.sample_seconds,
        progress_seconds=args.progress_seconds,
        warmup_minutes=args.warmup_minutes,
        out=args.out,
    )
    report = run_soak(settings, options)
    return 0 if report["passed"] else 1


def cmd_settings(settings: Settings, args: argparse.Namespace) -> int:
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        shown = "**********" if "password" in name or "key" in name else value
        print(f"FRAUD_{name.upper():40} = {shown!s:40} {field.description or ''}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraud",
        description="Real-time fraud detection on Apache Kafka. Settings come from FRAUD_* environment "
        "variables (see `fraud settings`); KAFKA_BOOTSTRAP_SERVERS points at an existing cluster.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    kafka = sub.add_parser("kafka", help="manage the local single-node KRaft broker (fetched with Maven)")
    kafka.add_argument("action", choices=["start", "stop", "status", "fetch"])
    kafka.set_defaults(func=cmd_kafka)

    registry = sub.add_parser("registry", help="manage the local schema registry (Apicurio)")
    registry.add_argument("action", choices=["start", "stop", "status", "fetch"])
    registry.set_defaults(func=cmd_registry)

    schemas = sub.add_parser(
        "schemas", help="register schemas/ with the schema registry (subject <topic>-value), checked first"
    )
    schemas.add_argument("action", choices=["register"])
    schemas.add_argument("--check", action="store_true", help="only say what registering would do")
    schemas.add_argument(
        "--dir",
        type=Path,
        help="take <kind>.v<latest>.schema.json from DIR where it has one (a change to try)",
    )
    schemas.set_defaults(func=cmd_schemas)

    topics = sub.add_parser("topics", help="create the pipeline's topics (idempotent)")
    topics.set_defaults(func=cmd_topics)

    worker = sub.add_parser("worker", help="run a pipeline worker (Faust); several share partitions")
    worker.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    worker.set_defaults(func=cmd_worker)

    simulate = sub.add_parser("simulate", help="publish simulated transactions and, later, their labels")
    simulate.add_argument("--rate", type=float, help="transactions per second (default FRAUD_SIMULATOR_RATE)")
    simulate.add_argument("--count", type=int, help="stop after this many transactions")
    simulate.add_argument("--duration", type=float, help="stop after this many seconds")
    simulate.add_argument("--fast", action="store_true", help="as fast as possible, not in real time")
    simulate.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics on this port (default FRAUD_SIMULATOR_METRICS_PORT; 0: none)",
    )
    simulate.set_defaults(func=cmd_simulate)

    monitor = sub.add_parser("monitor", help="run the Dash monitor for on-call staff")
    monitor.add_argument("--debug", action="store_true", help="Dash debug mode (reloader off)")
    monitor.set_defaults(func=cmd_monitor)

    demo = sub.add_parser("demo", help="local Kafka, topics, a worker, the simulator and the monitor")
    demo.add_argument("--rate", type=float, default=None, help="simulated transactions per second")
    demo.set_defaults(func=cmd_demo)

    generate = sub.add_parser("generate", help="write simulated days of labelled transactions to a file")
    generate.add_argument("--days", type=float, default=60, help="simulated days (default 60)")
    generate.add_argument("--rate", type=float, default=0.2, help="transactions per second of simulated time")
    generate.add_argument("--start", help="first day, YYYY-MM-DD (default: --days before today)")
    generate.add_argument("--out", type=Path, required=True, help="output .jsonl.gz or .csv")
    generate.set_defaults(func=cmd_generate)

    backtest = sub.add_parser(
        "backtest",
        help="replay labelled transactions through the detection core with delayed labels",
        description="Replay a labelled file in event-time order. Foreign layouts are mapped with "
        "--mapping (docs/mappings/*.yaml) and --map; rows that cannot be mapped are counted by reason "
        "(docs/operations.md, Replaying your own history). Card numbers are replaced by keyed tokens "
        "(FRAUD_BACKTEST_TOKEN_KEY).",
    )
    backtest.add_argument("input", type=Path, help=".csv, .tsv, .jsonl[.gz] or .parquet with a fraud label")
    backtest.add_argument("--label-delay-days", type=float, default=7.0, help="labels known N days later")
    backtest.add_argument(
        "--mapping", type=Path, metavar="FILE", help="YAML mapping file: columns, timezone, formats, defaults"
    )
    backtest.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="take FIELD (transaction_id, event_time, card_token, customer_id, "
        "terminal_id, amount, is_fraud, fraud_type, ...) from COLUMN, event_time also from "
        "DATE+TIME columns; repeatable, over the mapping file",
    )
    backtest.add_argument(
        "--timezone", metavar="TZ", help="zone of times without offset: UTC (default), Europe/Berlin, +02:00"
    )
    backtest.add_argument(
        "--time-unit",
        choices=["auto", "iso", "s", "ms"],
        help="event times as ISO 8601 or epoch seconds/milliseconds (default auto: by their magnitude)",
    )
    backtest.add_argument("--decimal", choices=[".", ","], help="decimal mark of amounts (default .)")
    backtest.add_argument(
        "--max-refused",
        default="1%",
        metavar="SHARE",
        help="stop before replaying if more rows are refused: 1%% (default), 0.05, 100%% (never)",
    )
    backtest.add_argument(
        "--refused", type=Path, metavar="CSV", help="write the refused rows with their reason"
    )
    backtest.add_argument(
        "--dry-run",
        action="store_true",
        help="map the first 1,000 rows: three transactions, the formats found, the refusals; no replay",
    )
    backtest.add_argument(
        "--mode",
        choices=["combined", "rules", "model"],
        default="combined",
        help="rules and model (default), rules alone, or the model alone",
    )
    backtest.add_argument("--k", type=int, default=100, help="k of card precision@k (default 100)")
    backtest.add_argument("--out", type=Path, default=Path("var/backtest"), help="report folder")
    backtest.add_argument("--scores", type=Path, help="also write every transaction's score to this CSV")
    backtest.set_defaults(func=cmd_backtest)

    model = sub.add_parser("model", help="list, export or roll back the model snapshots of this app id")
    model.add_argument("action", choices=["list", "export", "rollback"])
    model.add_argument("name", nargs="?", help="snapshot file name (export, rollback)")
    model.add_argument("--to", type=Path, default=Path("."), help="export folder")
    model.set_defaults(func=cmd_model)

    bench = sub.add_parser(
        "bench",
        help="throughput and latency of the pipeline side by side with raw Kafka (see docs/performance.md)",
    )
    bench.add_argument(
        "--transactions", type=int, default=200_000, help="pre-produced transactions (default 200000)"
    )
    bench.add_argument(
        "--partitions", type=int, default=4, help="partitions of the benchmark's topics (default 4)"
    )
    bench.add_argument(
        "--latency-seconds", type=float, default=30.0, help="length of the latency run (default 30)"
    )
    bench.add_argument(
        "--warmup", type=int, default=30_000, help="labelled transactions that train the model"
    )
    bench.add_argument(
        "--latency-rates",
        type=_rates,
        default=(100.0, 200.0, 400.0),
        metavar="R1,R2,...",
        help="also measure latency at these fixed rates, transactions/s (default 100,200,400; '' for none)",
    )
    bench.add_argument("--profile", action="store_true", help="profile the one-worker run with py-spy")
    bench.add_argument(
        "--one-worker-only",
        action="store_true",
        help="only the one-worker run (a quick look while profiling)",
    )
    bench.add_argument(
        "--latency-only",
        type=float,
        metavar="RATE",
        help="only the latency run, at RATE transactions/s (a quick look while tuning)",
    )
    bench.add_argument(
        "--recovery",
        action="store_true",
        help="instead: time to ready of a worker that lost its state, after each of --recovery-counts "
        "transactions (docs/reliability.md, 'Table recovery')",
    )
    bench.add_argument(
        "--recovery-counts",
        type=lambda text: tuple(int(float(n)) for n in text.split(",")),
        default=(50_000, 200_000, 1_000_000),
        metavar="N1,N2,...",
        help="transactions seen before each measurement, increasing (default 50000,200000,1000000)",
    )
    bench.add_argument("--out", type=Path, default=Path("var/bench"), help="folder for the JSON and charts")
    bench.set_defaults(func=cmd_bench)

    soak = sub.add_parser(
        "soak",
        help="two workers, the simulator and the monitor for M minutes under faults; every id counted",
        description="Runs on topics of its own (soak-<time>-*). Every --kill-every minutes one worker gets "
        "SIGKILL and is restarted; the local broker is restarted once halfway (not a cluster named by "
        "KAFKA_BOOTSTRAP_SERVERS). At the end: produced ids against decided ids, duplicates, dead letters, "
        "and every process's memory over time (soak.json, rss.svg, lag.svg in --out). Exit code 1 when "
        "an id is missing, a message was dead-lettered or a process's memory grew after the warm-up.",
    )
    soak.add_argument("--minutes", type=float, default=60.0, help="length of the run (default 60)")
    soak.add_argument("--rate", type=float, default=200.0, help="transactions per second (default 200)")
    soak.add_argument(
        "--kill-every", type=float, default=5.0, metavar="MINUTES", help="SIGKILL a worker this often (5)"
    )
    soak.add_argument(
        "--no-broker-restart", action="store_true", help="do not restart the local broker halfway"
    )
    soak.add_argument("--partitions", type=int, default=4, help="partitions of the soak's topics (4)")
    soak.add_argument("--sample-seconds", type=float, default=10.0, help="memory sampled this often (10)")
    soak.add_argument("--progress-seconds", type=float, default=30.0, help="a progress line this often (30)")
    soak.add_argument(
        "--warmup-minutes", type=float, default=None, help="memory judged after this (a third, at most 15)"
    )
    soak.add_argument("--out", type=Path, default=Path("var/soak"), help="report folder (var/soak)")
    soak.set_defaults(func=cmd_soak)

    show = sub.add_parser("settings", help="list every setting with its environment variable and value")
    show.set_defaults(func=cmd_settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(f"fraud: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.func(settings, args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line for known start-up failures
        from confluent_kafka import KafkaException

        from pipeline.contracts.schema_registry import RegistryError
        from pipeline.detection.rules import RuleError
        from pipeline.detection.snapshots import SnapshotError
        from pipeline.tools.backtest import BacktestError
        from pipeline.tools.local_kafka import LocalKafkaError
        from pipeline.tools.local_registry import LocalRegistryError
        from pipeline.worker.topics import BrokerUnavailableError

        if isinstance(
            exc,
            RuleError
            | LocalKafkaError
            | BacktestError
            | BrokerUnavailableError
            | SnapshotError
            | PortInUseError
            | RegistryError
            | LocalRegistryError,
        ):
            print(f"fraud: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, KafkaException):  # e.g. a topic the cluster refuses to create
            print(
                f"fraud: Kafka at {settings.bootstrap_servers} refused: {exc.args[0].str()}", file=sys.stderr
            )
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
