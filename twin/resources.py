"""What a command will need, estimated before it starts, against what the machine has.

Every heavy command lists its large allocations as :class:`Need` s (the tracer, the
channel, the paths, grids, dictionaries...) from its config and options alone, before
any work, and :func:`check_memory` refuses with one line naming the knob of the largest
part when their sum exceeds the budget: the memory available now (``MemAvailable``,
within a cgroup's limit), or less with ``TWIN_MEMORY_LIMIT`` (e.g. ``8G``, ``512M``).
:func:`check_disk` does the same for the output's size against the free disk space.

The tracing and channel models are fits to measured peaks (``scripts/twin/bench_memory.py
--estimate`` prints estimate and measured peak side by side; docs/BENCHMARKS.md): a
fresh process holds about 0.5 GB; Sionna's deterministic solver about 40 B per sample,
receiver, transmitter and bounce; the truth of one path per antenna pair ~80 B while it
is extracted; the CFR its complex64 bytes plus a complex128 temporary per chunk. The
number of paths is not known before tracing: ``1 + d + d²`` per (snapshot, BS) at
depth ``d`` (measured on the bundled street canyon: 3, 9–14 and 35 paths at depths 1, 3
and 5), so a scene much richer than that can still need more than estimated.
``twin simulate`` writes its run file a batch at a time (without RIS tiles): it holds a
batch's paths and channel, not the drive's, and ~12 kB per snapshot that tracing keeps
(:func:`streamed_needs`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from twin.errors import TwinInputError

MEMORY_LIMIT_ENV = "TWIN_MEMORY_LIMIT"
#: [B] a fresh ``twin`` process with Sionna RT loaded (measured 0.45–0.48 GB).
PROCESS_BYTES = 0.5e9
#: [B] Sionna's deterministic candidate generator per sample, receiver, transmitter and
#: bounce (measured 26, 105/3, 186/5 B at depths 1, 3, 5).
TRACE_BYTES_PER_SAMPLE_BOUNCE = 40.0
#: [B] the truth of one path and antenna pair while a batch is extracted (float32 from
#: Sionna, float64 and complex128 copies, the complex64 result).
EXTRACT_BYTES_PER_GAIN = 80.0
#: [B] Sionna's path buffer per slot (``max_num_paths_per_src`` per source): a fixed part
#: and a part per bounce (measured 62 and 117 B at depths 1 and 3, 1e8 slots).
PATH_BUFFER_BYTES = 28.0
PATH_BUFFER_BYTES_PER_BOUNCE = 30.0
#: [B] per path and bounce: interaction types, objects, primitives, points (float64).
PATH_BYTES_PER_BOUNCE = 48.0
#: [B] per path: delay, angles, Doppler, depth, virtual anchor, validity.
PATH_BYTES = 80.0
#: [B] per snapshot of a drive: its time, position, velocity and orientation (80 B), which
#: object holds it, whether a path reaches it (measured 106 B held, 104 B at the peak of
#: sampling a 210 001-snapshot drive).
DRIVE_BYTES_PER_SNAPSHOT = 120.0
#: [B] per traced snapshot, the native memory tracing keeps for the rest of the process
#: (Sionna RT / Dr.Jit; the Python heap stays flat, and it is the same without writing
#: the run file): measured 9 kB on the bundled street (depth 1) and 12 kB on
#: builtin:munich (depth 3), batches of 64 (scripts/twin/bench_long_drive.py).
TRACED_BYTES_PER_SNAPSHOT = 12e3
#: [B] per channel sample: the complex64 result, and a complex128 temporary per chunk.
CHANNEL_BYTES = 8.0
CHANNEL_TEMPORARY_BYTES = 16.0
#: Elements of the channel's per-chunk temporary (:mod:`twin.channel`).
CHANNEL_CHUNK_ELEMENTS = float(1 << 24)
#: [B] a mesh file's bytes once loaded (Mitsuba's buffers, trimesh's copy, BVH), and what
#: each file (an object) costs besides (Mitsuba's shape, the twin's per-object tables;
#: ~30 kB measured over builtin:munich's 2 368 objects).
MESH_BYTES_PER_FILE_BYTE = 6.0
MESH_BYTES_PER_FILE = 32e3
#: Share of the available memory a command may plan to use (the rest: the system, the
#: allocator's slack).
BUDGET_SHARE = 0.9


def expected_paths(max_depth: int) -> int:
    """Paths per (snapshot, BS) assumed before tracing: ``1 + d + d²``."""
    return 1 + max_depth + max_depth**2


@dataclass(frozen=True)
class Need:
    """A large allocation a command will make.

    Attributes
    ----------
    what : what it holds, for the message ("the channel (CFR)").
    bytes : its estimated size [B].
    knob : the setting that sizes it ("radio.num_subcarriers"): the message starts with it.
    fix : how to shrink it (default: "reduce KNOB").
    """

    what: str
    bytes: float
    knob: str
    fix: str = ""

    @property
    def advice(self) -> str:
        return self.fix or f"reduce {self.knob}"


def _parse_size(text: str) -> float:
    units = {"": 1.0, "K": 2.0**10, "M": 2.0**20, "G": 2.0**30, "T": 2.0**40}
    raw = text.strip().upper().removesuffix("B").removesuffix("I")
    suffix = raw[-1:] if raw[-1:] in units else ""
    try:
        value = float(raw.removesuffix(suffix)) * units[suffix]
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise TwinInputError(f"{MEMORY_LIMIT_ENV}: expected a size such as 8G or 512M, "
                             f"got {text!r}")
    return value


def _meminfo_available() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> float | None:
    """Bytes left under this process's cgroup memory limit (v2, then v1), if any."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
         "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = float(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit != "max" and float(limit) < 2**60:
            return max(float(limit) - usage, 0.0)
    return None


def memory_budget() -> tuple[float, str]:
    """The bytes a command may plan to use now, and where that figure comes from."""
    candidates: list[tuple[float, str]] = []
    available = _meminfo_available()
    if available is None:
        pages, size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        available = float(pages * size)
    candidates.append((BUDGET_SHARE * available, "available"))
    room = _cgroup_room()
    if room is not None:
        candidates.append((BUDGET_SHARE * room, "left under the cgroup's limit"))
    limit = os.environ.get(MEMORY_LIMIT_ENV)
    if limit:
        candidates.append((_parse_size(limit), f"allowed by {MEMORY_LIMIT_ENV}"))
    return min(candidates)


def format_bytes(value: float) -> str:
    """``value`` [B] in GiB/MiB, three significant digits."""
    if value >= 2**30:
        return f"{value / 2**30:.3g} GiB"
    return f"{value / 2**20:.3g} MiB"


def _refuse_beyond(needs: Sequence[Need], total: float, capacity: float,
                   template: str) -> None:
    """One line naming the knob of the largest need when ``total`` exceeds ``capacity``
    (``template`` says what, with ``{total}`` and ``{capacity}``)."""
    if total > capacity and needs:
        largest = max(needs, key=lambda n: n.bytes)
        what = template.format(total=format_bytes(total), capacity=format_bytes(capacity))
        raise TwinInputError(f"{largest.knob}: {what}; the largest part, {largest.what}, "
                             f"is {format_bytes(largest.bytes)} ({largest.advice})")


def check_memory(needs: Iterable[Need], command: str) -> float:
    """Refuse, with one line naming the knob of the largest part, needs whose sum (plus a
    fresh process) exceeds :func:`memory_budget`; returns the estimated total [B]."""
    parts = [n for n in needs if n.bytes > 0]
    total = PROCESS_BYTES + math.fsum(n.bytes for n in parts)
    budget, source = memory_budget()
    _refuse_beyond(parts, total, budget, f"{command} would need about {{total}} of memory, "
                   f"more than the {{capacity}} {source}")
    return total


def check_disk(path: Path, needs: Sequence[Need], command: str) -> None:
    """Refuse, naming the knob of the largest part, an output of the ``needs`` ' total
    size that the free space of ``path`` 's file system cannot hold."""
    directory = Path(path).resolve().parent
    while not directory.exists():
        directory = directory.parent
    free = float(shutil.disk_usage(directory).free)
    _refuse_beyond(needs, math.fsum(n.bytes for n in needs), free,
                   f"{command} would write about {{total}} to {directory}, more than the "
                   "{capacity} free there")


# ------------------------------------------------------------- shared estimates


@dataclass(frozen=True)
class TraceSize:
    """The sizes that decide a traced channel's memory (:func:`tracing_needs`).

    ``snapshots`` traced UE positions (``batch`` per solver call), ``bs`` transmitters,
    ``bs_antennas``/``ue_antennas`` per array, ``subcarriers`` of the CFR kept (0: none),
    ``samples`` per source, ``max_depth``, ``deterministic`` solver; ``knob_prefix`` of
    the config keys (``""`` for a run, the same for a dataset); ``snapshots_knob``.
    """

    snapshots: int
    batch: int
    bs: int
    bs_antennas: int
    ue_antennas: int
    subcarriers: int
    samples: int
    path_slots: int
    max_depth: int
    deterministic: bool
    snapshots_knob: str


def _antennas_knob(size: TraceSize) -> str:
    return "base_stations[0].array" if size.bs_antennas >= size.ue_antennas else "ue.array"


def _channel_knob(size: TraceSize) -> str:
    """The largest of the channel's factors: subcarriers, antenna pairs, snapshots."""
    return max(((size.subcarriers, "radio.num_subcarriers"),
                (size.bs_antennas * size.ue_antennas, _antennas_knob(size)),
                (size.snapshots, size.snapshots_knob)))[1]


def stored_needs(size: TraceSize, *, held: str = "every snapshot") -> list[Need]:
    """What a traced channel keeps (and a run file holds): the paths of ``held`` (the
    ``size.snapshots``), the channel (CFR) without its temporary."""
    paths = expected_paths(size.max_depth)
    pairs = size.bs_antennas * size.ue_antennas
    antennas = _antennas_knob(size)
    needs = [Need(f"the paths of {held}", size.snapshots * size.bs * paths * (
        CHANNEL_BYTES * pairs + PATH_BYTES_PER_BOUNCE * size.max_depth + PATH_BYTES),
        antennas if pairs > size.snapshots else size.snapshots_knob)]
    if size.subcarriers:
        needs.append(Need(f"the channel (CFR) of {held}", CHANNEL_BYTES * size.bs * pairs
                          * size.subcarriers * size.snapshots, _channel_knob(size)))
    return needs


def transient_needs(size: TraceSize) -> list[Need]:
    """What tracing holds only for a while: Sionna's path buffer and deterministic
    solver, a batch's truth being extracted, the channel's per-chunk temporary."""
    batch = min(size.batch, size.snapshots)
    pairs = size.bs_antennas * size.ue_antennas
    bounces = max(size.max_depth, 1)
    needs = [Need("Sionna's path buffer", size.path_slots * size.bs * (
        PATH_BUFFER_BYTES + PATH_BUFFER_BYTES_PER_BOUNCE * bounces),
        "tracing.max_num_paths_per_src")]
    if size.deterministic:
        needs.append(Need(
            "Sionna's deterministic solver", TRACE_BYTES_PER_SAMPLE_BOUNCE * size.samples
            * batch * size.bs * bounces, "tracing.samples_per_src",
            "reduce tracing.samples_per_src or tracing.batch_size, or set "
            "tracing.deterministic: false"))
    needs.append(Need(
        "the truth of a batch being extracted", EXTRACT_BYTES_PER_GAIN * batch * size.bs
        * expected_paths(size.max_depth) * pairs,
        _antennas_knob(size) if pairs > batch else "tracing.batch_size"))
    if size.subcarriers:
        per_snapshot = float(size.bs * pairs * size.subcarriers)
        chunk = min(max(CHANNEL_CHUNK_ELEMENTS, per_snapshot), per_snapshot * size.snapshots)
        needs.append(Need("the channel's temporary", CHANNEL_TEMPORARY_BYTES * chunk,
                          _channel_knob(size)))
    return needs


def tracing_needs(size: TraceSize) -> list[Need]:
    """A traced channel's memory (module docstring): :func:`transient_needs` and
    :func:`stored_needs`."""
    return transient_needs(size) + stored_needs(size)


def streamed_needs(size: TraceSize) -> list[Need]:
    """A traced channel written to its file a batch at a time (``twin simulate`` without
    RIS tiles): :func:`tracing_needs` of one batch, whatever the number of snapshots, and
    what stays per snapshot: the drive's poses and flags, what tracing keeps."""
    batch = dataclasses.replace(size, snapshots=min(size.batch, size.snapshots),
                                snapshots_knob="tracing.batch_size")
    return [*transient_needs(batch), *stored_needs(batch, held="a batch"),
            Need("the drive's poses and what tracing keeps per snapshot",
                 (DRIVE_BYTES_PER_SNAPSHOT + TRACED_BYTES_PER_SNAPSHOT) * size.snapshots,
                 size.snapshots_knob)]


def mesh_need(files: Sequence[Path]) -> Need:
    """The loaded scene, from its files' sizes."""
    size = math.fsum(float(f.stat().st_size) for f in files)
    return Need("the scene's meshes", MESH_BYTES_PER_FILE_BYTE * size
                + MESH_BYTES_PER_FILE * len(files), "scene.file")


__all__ = ["MEMORY_LIMIT_ENV", "Need", "TraceSize", "check_disk", "check_memory",
           "expected_paths", "format_bytes", "memory_budget", "mesh_need", "stored_needs",
           "streamed_needs", "tracing_needs", "transient_needs"]
