"""Where the per-model work of a command runs: loky's worker processes on this machine
(`--workers N`), or a Dask distributed scheduler (`--cluster ADDRESS`, or `local:N` for a
LocalCluster of N worker processes started for the run and closed after it; docs/cluster.md).

A task is one model (trained, measured) or one candidate's fits; every worker runs one task at a
time with one TensorFlow thread, and returns all that its task produces (rows, side files'
contents, signatures) to the client, which writes them. Only the trained models are written by
the workers, into the --out folder, which they must reach at the same path.
"""

import concurrent.futures
import contextlib
import logging
import os

INSTALL = "pip install 'demogen[cluster]'"
CONNECT_SECONDS = 10


def local_workers(address):
    """N of `local:N` (a LocalCluster of N workers), None for a scheduler's address."""
    if not address.startswith("local:"):
        return None
    count = address.removeprefix("local:")
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"--cluster local:N needs a number of workers N of at least 1, got "
                         f"{address!r}")
    return int(count)


@contextlib.contextmanager
def connect(address):
    """A distributed.Client of the scheduler at `address` (or of a LocalCluster of N
    single-threaded worker processes for `local:N`), closed on leaving. Refused before any work:
    without dask.distributed installed, a scheduler that does not answer within
    CONNECT_SECONDS, workers with more than one thread."""
    n_workers = local_workers(address)
    try:
        import distributed
    except ImportError:
        raise ValueError(f"--cluster needs Dask's distributed scheduler, which is not "
                         f"installed; install it with: {INSTALL}") from None
    with contextlib.ExitStack() as stack:
        scheduler = address
        if n_workers is not None:
            scheduler = stack.enter_context(distributed.LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=logging.ERROR))
        try:
            client = stack.enter_context(distributed.Client(scheduler,
                                                            timeout=CONNECT_SECONDS))
        except (OSError, TimeoutError) as error:
            raise ValueError(f"no Dask scheduler answers at {address!r} ({error}); start one "
                             "with `dask scheduler` and workers with `dask worker ADDRESS "
                             "--nthreads 1` (docs/cluster.md), or run here with --cluster "
                             "local:N") from None
        threaded = [name for name, worker in client.scheduler_info()["workers"].items()
                    if worker["nthreads"] != 1]
        if threaded:
            raise ValueError(f"the Dask worker(s) {', '.join(threaded)} run several threads, "
                             "whose tasks would share one TensorFlow process and its seeds; "
                             "start every worker with `dask worker ADDRESS --nthreads 1`")
        client.register_plugin(_worker_setup(os.environ.get("DEMOGEN_QUIET") == "1"))
        yield client


def _worker_setup(quiet):
    """A Dask worker plugin, run when a worker starts (a restarted one too) before any task:
    TensorFlow imported as the command line asked (`quiet` or not) and set to one thread; and
    dask's sizeof, which samples large collections with Python's global random generator from
    the worker's other threads while a task runs (changing the seeds Keras draws from it as it
    builds a model), given a generator of its own."""
    from distributed import WorkerPlugin

    class Setup(WorkerPlugin):
        def setup(self, worker):
            import random

            import dask.sizeof

            from demogen.console import import_tensorflow
            from demogen_fit.zoo import _one_thread

            dask.sizeof.random = random.Random(0)
            import_tensorflow(quiet=quiet)
            _one_thread()

    return Setup()


class _Loky:
    """loky's reusable worker processes (also for one worker), TensorFlow imported as asked."""

    def __init__(self, workers):
        from joblib.externals.loky import get_reusable_executor

        from demogen.console import import_tensorflow_as_asked

        if workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
        self.executor = get_reusable_executor(max_workers=workers,
                                              initializer=import_tensorflow_as_asked)

    def submit(self, function, *args):
        return self.executor.submit(function, *args)

    def as_completed(self, futures):
        return concurrent.futures.as_completed(futures)

    def stop(self):
        self.executor.shutdown(wait=False, kill_workers=True)


class _Dask:
    """A distributed.Client's workers."""

    def __init__(self, client):
        self.client = client
        self.futures = []

    def submit(self, function, *args):
        self.futures.append(self.client.submit(function, *args, pure=False))
        return self.futures[-1]

    def as_completed(self, futures):
        from distributed import as_completed

        return as_completed(futures)

    def stop(self):
        self.client.cancel(self.futures)


@contextlib.contextmanager
def pool(workers=2, client=None):
    """The workers of one command (`submit(function, *args)` gives a future with `result()`;
    `as_completed(futures)` yields them as they finish): `client`'s when given, else `workers`
    loky processes. On an error or an interrupt the tasks submitted are stopped (what they had
    not returned is redone by the next run)."""
    runner = _Loky(workers) if client is None else _Dask(client)
    try:
        yield runner
    except BaseException:
        runner.stop()
        raise
