"""Host collector: the local machine's CPU, memory, disks, network and processes as Samples.

First stage of the pipeline (collect -> ``Sample`` -> evaluate). ``HostCollector.collect``
is synchronous and cheap (psutil reads of /proc and statvfs); the daemon runs it through
``asyncio.to_thread`` on each poll. Rates (CPU, disk, network) are deltas against the
previous call, so the first call establishes a baseline and emits no rate samples.

Each section (cpu, memory, filesystems, disk, network, load, processes) is isolated: one
that raises is logged, counted in ``errors_total``, and the series it produced last time
come back as UNKNOWN samples (value ``None``) instead of vanishing, so the evaluator holds
their state rather than seeing a recovery.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence

import psutil

from alertd.clock import Clock
from alertd.model import Labels, Sample, merge_labels

log = logging.getLogger(__name__)

DEFAULT_EXCLUDED_FSTYPES: frozenset[str] = frozenset(
    {
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devfs",
        "devpts", "devtmpfs", "efivarfs", "erofs", "fuse.gvfsd-fuse", "fuse.lxcfs",
        "fuse.portal", "fuse.snapfuse", "fusectl", "hugetlbfs", "iso9660", "mqueue", "nfsd",
        "nsfs", "overlay", "proc", "pstore", "ramfs", "rootfs", "rpc_pipefs", "securityfs",
        "selinuxfs", "squashfs", "sysfs", "tmpfs", "tracefs",
    }
)  # fmt: skip

DEFAULT_EXCLUDED_MOUNTPOINT_PREFIXES = ("/proc", "/sys", "/dev", "/run", "/snap", "/var/lib/docker")

# Block devices whose I/O is not disk I/O (loop, ram, zram, floppy) and partitions, whose
# traffic is already counted on their whole disk -- node_exporter's default ignore list.
_IGNORED_DISKS = re.compile(r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]+|nvme\d+n\d+p)\d+$")
_IGNORED_NICS = frozenset({"lo"})
# Counted inside user / nice on Linux; leaving them out makes the modes sum to 100.
_GUEST_MODES = frozenset({"guest", "guest_nice"})
_IDLE_MODES = frozenset({"idle", "iowait"})

_Section = Callable[[float, float], list[Sample]]
_Counters = dict[tuple[str, str], float]  # (metric, device) -> counter, already in metric units


def _excluded_mountpoint(mountpoint: str, prefixes: tuple[str, ...]) -> bool:
    """Match whole path components: "/run" excludes "/run/user/1", not "/running"."""
    return any(mountpoint == p or mountpoint.startswith(p.rstrip("/") + "/") for p in prefixes)


class HostCollector:
    """Collect host metrics for one target with psutil.

    ``labels`` (instance, site, role, ...) go on every sample; per-series labels such as
    ``mountpoint`` or ``device`` are merged on top. ``processes`` names the process checks:
    a process matches a name when its ``name()`` or the basename of its ``cmdline[0]`` equals it.
    """

    def __init__(
        self,
        *,
        labels: Labels,
        processes: Sequence[str] = (),
        clock: Clock,
        exclude_fstypes: frozenset[str] = DEFAULT_EXCLUDED_FSTYPES,
        exclude_mountpoint_prefixes: tuple[str, ...] = DEFAULT_EXCLUDED_MOUNTPOINT_PREFIXES,
    ) -> None:
        self._labels = labels
        self._processes = tuple(dict.fromkeys(processes))
        self._clock = clock
        self._exclude_fstypes = exclude_fstypes
        self._exclude_prefixes = exclude_mountpoint_prefixes
        self.errors_total: int = 0
        """Section failures since construction (a section that raised unexpectedly)."""
        self._sections: tuple[tuple[str, _Section], ...] = (
            ("cpu", self._cpu),
            ("memory", self._memory),
            ("filesystems", self._filesystems),
            ("disk", self._disk),
            ("network", self._network),
            ("load", self._load),
            ("processes", self._process_checks),
        )
        self._cpu_prev: dict[str, float] | None = None
        self._counters: dict[str, tuple[float, _Counters]] = {}
        self._last_series: dict[str, list[tuple[str, Labels]]] = {}
        self._section_errors: dict[str, str] = {}
        self._failed_mounts: set[str] = set()

    def collect(self) -> list[Sample]:
        """Return one sample per series of every section, all stamped with the same ``ts``."""
        ts = self._clock.now()
        mono = self._clock.monotonic()
        samples: list[Sample] = []
        for name, section in self._sections:
            try:
                got = section(ts, mono)
            except Exception as exc:
                self.errors_total += 1
                self._section_failed(name, exc)
                samples.extend(Sample(m, lb, None, ts) for m, lb in self._last_series.get(name, ()))
                continue
            if self._section_errors.pop(name, None) is not None:
                log.info("host collector section %s recovered", name)
            self._last_series[name] = [(s.metric, s.labels) for s in got]
            samples.extend(got)
        return samples

    def _section_failed(self, name: str, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if self._section_errors.get(name) == message:
            log.debug("host collector section %s still failing: %s", name, message)
            return
        self._section_errors[name] = message
        log.warning("host collector section %s failed: %s", name, message, exc_info=exc)

    def _series(self, **extra: str) -> Labels:
        return merge_labels(self._labels, extra)

    # -- sections: each takes (ts, monotonic) and returns its samples ---------------------

    def _cpu(self, ts: float, mono: float) -> list[Sample]:
        samples = []
        count = psutil.cpu_count()
        if count:
            samples.append(Sample("host_cpu_count", self._labels, float(count), ts))
        times = {k: float(v) for k, v in psutil.cpu_times()._asdict().items()}
        prev, self._cpu_prev = self._cpu_prev, times
        if prev is None:
            return samples  # psutil's first reading has nothing to compare against
        deltas = {
            mode: max(value - prev.get(mode, value), 0.0)  # idle can step back on Linux
            for mode, value in times.items()
            if mode not in _GUEST_MODES
        }
        total = sum(deltas.values())
        if total <= 0:
            return samples
        idle = sum(d for mode, d in deltas.items() if mode in _IDLE_MODES)
        samples.append(
            Sample("host_cpu_usage_percent", self._labels, 100 * (total - idle) / total, ts)
        )
        samples.extend(
            Sample("host_cpu_mode_percent", self._series(mode=mode), 100 * d / total, ts)
            for mode, d in deltas.items()
        )
        return samples

    def _memory(self, ts: float, mono: float) -> list[Sample]:
        vm = psutil.virtual_memory()
        swap = psutil.swap_memory()
        used = 100 * (vm.total - vm.available) / vm.total if vm.total else 0.0
        swap_used = 100 * swap.used / swap.total if swap.total else 0.0
        return [
            Sample("host_memory_used_percent", self._labels, used, ts),
            Sample("host_memory_available_bytes", self._labels, float(vm.available), ts),
            Sample("host_memory_total_bytes", self._labels, float(vm.total), ts),
            Sample("host_swap_used_percent", self._labels, swap_used, ts),
        ]

    def _filesystems(self, ts: float, mono: float) -> list[Sample]:
        samples: list[Sample] = []
        seen: set[tuple[str, str]] = set()
        failed: set[str] = set()
        for part in psutil.disk_partitions(all=False):
            key = (part.device, part.mountpoint)
            if (
                part.fstype in self._exclude_fstypes
                or _excluded_mountpoint(part.mountpoint, self._exclude_prefixes)
                or key in seen
            ):
                continue
            seen.add(key)
            labels = self._series(
                mountpoint=part.mountpoint, device=part.device, fstype=part.fstype
            )
            used: float | None
            try:
                usage = psutil.disk_usage(part.mountpoint)
            except OSError as exc:  # PermissionError, a stale NFS handle, unmounted meanwhile
                failed.add(part.mountpoint)
                if part.mountpoint not in self._failed_mounts:
                    log.warning("statvfs %s (%s) failed: %s", part.mountpoint, part.device, exc)
                used = free = size = None
            else:
                # Like df: the share of what non-root users can use (reserved blocks excluded).
                room = usage.used + usage.free
                used = 100 * usage.used / room if room else 0.0
                free, size = float(usage.free), float(usage.total)
            samples.append(Sample("host_filesystem_used_percent", labels, used, ts))
            samples.append(Sample("host_filesystem_free_bytes", labels, free, ts))
            samples.append(Sample("host_filesystem_size_bytes", labels, size, ts))
        for mountpoint in self._failed_mounts - failed:
            log.info("statvfs %s works again", mountpoint)
        self._failed_mounts = failed
        return samples

    def _disk(self, ts: float, mono: float) -> list[Sample]:
        counters: _Counters = {}
        for device, io in (psutil.disk_io_counters(perdisk=True) or {}).items():
            if _IGNORED_DISKS.match(device):
                continue
            counters["host_disk_read_bytes_per_second", device] = float(io.read_bytes)
            counters["host_disk_write_bytes_per_second", device] = float(io.write_bytes)
            busy_ms = getattr(io, "busy_time", None)  # Linux and FreeBSD only
            if busy_ms is not None:  # busy ms per second / 10 = percent of the time busy
                counters["host_disk_io_time_percent", device] = busy_ms / 10
        return self._rates("disk", counters, ts, mono)

    def _network(self, ts: float, mono: float) -> list[Sample]:
        counters: _Counters = {}
        for nic, io in psutil.net_io_counters(pernic=True).items():
            if nic in _IGNORED_NICS:
                continue
            counters["host_network_receive_bytes_per_second", nic] = float(io.bytes_recv)
            counters["host_network_transmit_bytes_per_second", nic] = float(io.bytes_sent)
            counters["host_network_receive_errors_per_second", nic] = float(io.errin)
            counters["host_network_transmit_errors_per_second", nic] = float(io.errout)
            counters["host_network_receive_drops_per_second", nic] = float(io.dropin)
            counters["host_network_transmit_drops_per_second", nic] = float(io.dropout)
        return self._rates("network", counters, ts, mono)

    def _load(self, ts: float, mono: float) -> list[Sample]:
        load1, load5, load15 = psutil.getloadavg()
        samples = [
            Sample("host_load1", self._labels, load1, ts),
            Sample("host_load5", self._labels, load5, ts),
            Sample("host_load15", self._labels, load15, ts),
            Sample("host_uptime_seconds", self._labels, ts - psutil.boot_time(), ts),
        ]
        count = psutil.cpu_count()
        if count:
            samples.append(Sample("host_load1_per_cpu", self._labels, load1 / count, ts))
        return samples

    def _process_checks(self, ts: float, mono: float) -> list[Sample]:
        if not self._processes:
            total = len(psutil.pids())
            return [Sample("host_processes_total", self._labels, float(total), ts)]
        counts = dict.fromkeys(self._processes, 0)
        total = 0
        # process_iter drops processes that exit mid-scan (NoSuchProcess) and reports an
        # attribute it may not read (AccessDenied, ZombieProcess) as None, per process.
        for proc in psutil.process_iter(["name", "cmdline"]):
            total += 1
            name = proc.info.get("name")
            cmdline = proc.info.get("cmdline")
            argv0 = os.path.basename(cmdline[0]) if cmdline else None
            for wanted in {name, argv0}:
                if wanted in counts:
                    counts[wanted] += 1
        samples = [Sample("host_processes_total", self._labels, float(total), ts)]
        for wanted, count in counts.items():
            labels = self._series(process=wanted)
            samples.append(Sample("host_process_running", labels, 1.0 if count else 0.0, ts))
            samples.append(Sample("host_process_count", labels, float(count), ts))
        return samples

    def _rates(self, section: str, counters: _Counters, ts: float, mono: float) -> list[Sample]:
        """Turn counters into per-second rates against the previous call, then re-seed.

        A new device, or a counter that went backwards (device reset, driver reload), has no
        rate this cycle: the current value becomes its baseline, never a negative or a spike.
        """
        prev = self._counters.get(section)
        self._counters[section] = (mono, counters)
        if prev is None or mono <= prev[0]:
            return []
        then, old = prev
        samples = []
        for (metric, device), value in counters.items():
            before = old.get((metric, device))
            if before is None or value < before:
                continue
            rate = (value - before) / (mono - then)
            if metric.endswith("_percent"):  # busy time overshoots slightly at the edges
                rate = min(rate, 100.0)
            samples.append(Sample(metric, self._series(device=device), rate, ts))
        return samples


__all__ = ["DEFAULT_EXCLUDED_FSTYPES", "DEFAULT_EXCLUDED_MOUNTPOINT_PREFIXES", "HostCollector"]
