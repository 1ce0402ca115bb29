"""Where tasks run: worker processes on this box, or Ray actors on a Ray cluster.

Both engines do the same thing: keep `jobs` long-lived workers (each loads its models once,
on its first task), hand each a task when it is free, and give back results as they finish.
The driver never depends on which engine ran a task: results are plain values, and
everything written to disk is decided in the driver, in a fixed order. That is what makes
the outputs byte-identical across engines and job counts.

Ray rather than a home-made job system: it schedules over many machines, restarts lost
workers, and moves results through its object store; `ray.util.ActorPool` gives "free worker
takes the next task" over actors that keep their model sessions.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from detector.audit import work
from detector.protocol.errors import UserError

_RETRIES = 2  # a task whose worker died is tried this many more times (another task may have killed it)


class Failed:
    """A task that could not run to completion (its worker died); `message` says why."""

    def __init__(self, task: Any, message: str) -> None:
        self.task = task
        self.message = message


class Engine(Protocol):
    jobs: int
    name: str

    def submit(self, task: Any) -> None: ...

    def pending(self) -> int: ...

    def next_result(self, timeout: float) -> Any | None:
        """A finished task's result (or `Failed`), or None when none finished in `timeout` s."""

    def close(self, cancel: bool = False) -> None: ...


def worker_env() -> dict[str, str]:
    """What every worker must see of the driver's environment: where the models are."""
    return {k: v for k in ("DETECTOR_MODEL_DIR",) if (v := os.environ.get(k))}


def results(engine: Engine, tasks: list[Any]) -> Iterator[Any]:
    """Submit `tasks` and yield their results (or `Failed`) as they finish."""
    for task in tasks:
        engine.submit(task)
    while engine.pending():
        result = engine.next_result(timeout=0.5)
        if result is not None:
            yield result


def make_engine(name: str, jobs: int | None, address: str | None) -> Engine:
    if name == "local":
        if address:
            raise UserError("--address is for --engine ray")
        return LocalEngine(jobs or os.cpu_count() or 1)
    if name == "ray":
        return RayEngine(jobs, address)
    raise UserError(f"--engine: unknown engine {name!r} (local or ray)")


# -- local: a process pool ---------------------------------------------------------------------------


def _local_init(env: dict[str, str]) -> None:
    # Ctrl-C reaches every process of the terminal's group: only the driver acts on it (it
    # stops the pool), so a worker is never interrupted halfway through writing a result.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    work.init_worker(env)


def _run_task(task: Any) -> Any:
    return task.run()


class LocalEngine:
    """`jobs` worker processes on this machine (spawned: nothing inherited from the driver's
    threads), each keeping its models loaded between tasks."""

    name = "local"

    def __init__(self, jobs: int) -> None:
        if jobs < 1:
            raise UserError("--jobs must be at least 1")
        self.jobs = jobs
        self._futures: dict[Future, tuple[Any, int]] = {}
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        import multiprocessing

        return ProcessPoolExecutor(
            max_workers=self.jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_local_init,
            initargs=(worker_env(),),
        )

    def submit(self, task: Any, attempt: int = 0) -> None:
        self._futures[self._pool.submit(_run_task, task)] = (task, attempt)

    def pending(self) -> int:
        return len(self._futures)

    def next_result(self, timeout: float) -> Any | None:
        if not self._futures:
            return None
        done, _ = wait(self._futures, timeout=timeout, return_when=FIRST_COMPLETED)
        if not done:
            return None
        fut = min(done, key=lambda f: id(f))
        task, attempt = self._futures.pop(fut)
        try:
            return fut.result()
        except BrokenProcessPool:
            # A worker died (killed, out of memory, a crash in a native library): every task
            # in flight fails with it. Start a fresh pool and try each again.
            if self._pool_broken():
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
            if attempt < _RETRIES:
                self.submit(task, attempt + 1)
                return self.next_result(timeout)
            return Failed(task, "its worker process died (killed, out of memory, or a crash while decoding)")

    def _pool_broken(self) -> bool:
        return bool(getattr(self._pool, "_broken", False))

    def close(self, cancel: bool = False) -> None:
        if cancel:
            # Python < 3.14 has no public way to stop running workers; a worker in the middle
            # of an hour of video would otherwise hold Ctrl-C up until it finished.
            processes = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for p in processes:
                if p.is_alive():
                    p.terminate()
            for p in processes:
                p.join(timeout=5)
        else:
            self._pool.shutdown(wait=True)
        self._futures.clear()


# -- Ray: actors ------------------------------------------------------------------------------------


class _RayWorker:
    """One Ray actor: a worker process that keeps its models between tasks."""

    def __init__(self, env: dict[str, str]) -> None:
        work.init_worker(env)

    def run(self, task: Any) -> Any:
        return task.run()


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--engine ray needs Ray: pip install 'detector[cluster]'") from None
    return ray


class RayEngine:
    """Ray actors, one CPU each. `address`: None starts a Ray on this machine just for this
    run; "auto" joins the cluster this machine is part of (`ray start`); "ray://HOST:PORT"
    connects to a remote cluster's head through Ray Client.

    Scheduling is a free list of actors and `ray.wait` on the tasks in flight (rather than
    `ray.util.ActorPool`, which does not say which task a dead actor held). Ray restarts a
    dead actor and retries its task (`max_restarts`, `max_task_retries`); a task that still
    fails comes back as `Failed`."""

    name = "ray"

    def __init__(self, jobs: int | None, address: str | None) -> None:
        ray = import_ray()

        if jobs is not None and jobs < 1:
            raise UserError("--jobs must be at least 1")
        self._ray = ray
        self._started = False
        env = worker_env()
        quiet = {"log_to_driver": False, "logging_level": "ERROR"}
        try:
            if ray.is_initialized():
                pass  # a caller (a test, a notebook) brought its own Ray
            elif address:
                ray.init(address=address, runtime_env={"env_vars": env}, **quiet)
            else:
                ray.init(
                    num_cpus=jobs or os.cpu_count() or 1,
                    include_dashboard=False,
                    # Results are acts and JPEGs (and annotated video parts with --video): a
                    # small store is plenty, and the default (30% of RAM) is not ours to take.
                    object_store_memory=512 * 1024 * 1024,
                    runtime_env={"env_vars": env},
                    **quiet,
                )
                self._started = True
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UserError(f"--address {address}: cannot connect to Ray: {str(e).splitlines()[0]}") from None
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < 1:
            raise UserError("the Ray cluster has no CPUs to run on")
        self.jobs = jobs or cpus
        actor = ray.remote(num_cpus=1, max_restarts=_RETRIES, max_task_retries=_RETRIES)(_RayWorker)
        self._actors = [actor.remote(env) for _ in range(self.jobs)]
        self._idle = list(self._actors)
        self._queue: list[Any] = []
        self._running: dict[Any, tuple[Any, Any]] = {}  # object ref -> (task, actor)

    def submit(self, task: Any) -> None:
        self._queue.append(task)
        self._dispatch()

    def _dispatch(self) -> None:
        while self._idle and self._queue:
            actor = self._idle.pop()
            task = self._queue.pop(0)
            self._running[actor.run.remote(task)] = (task, actor)

    def pending(self) -> int:
        return len(self._queue) + len(self._running)

    def next_result(self, timeout: float) -> Any | None:
        if not self._running:
            return None
        done, _ = self._ray.wait(list(self._running), num_returns=1, timeout=timeout)
        if not done:
            return None
        ref = done[0]
        task, actor = self._running.pop(ref)
        self._idle.append(actor)
        try:
            result = self._ray.get(ref)
        except self._ray.exceptions.RayError as e:
            result = Failed(task, f"its Ray worker failed: {str(e).strip().splitlines()[0][:200]}")
        self._dispatch()
        return result

    def close(self, cancel: bool = False) -> None:
        for a in self._actors:
            self._ray.kill(a)
        self._actors, self._idle, self._queue, self._running = [], [], [], {}
        if self._started:
            self._ray.shutdown()
