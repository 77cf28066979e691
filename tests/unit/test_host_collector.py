"""HostCollector: on the real machine, plus psutil monkeypatched for the edge cases."""

from __future__ import annotations

import logging
import time
from collections import namedtuple
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from alertd.clock import FakeClock
from alertd.collect.host import HostCollector
from alertd.model import Sample, make_labels

TARGET = make_labels({"instance": "db1", "site": "ams", "role": "db", "criticality": "high"})

Part = namedtuple("Part", "device mountpoint fstype opts")
Usage = namedtuple("Usage", "total used free percent")
NetIO = namedtuple(
    "NetIO", "bytes_sent bytes_recv packets_sent packets_recv errin errout dropin dropout"
)
DiskIO = namedtuple("DiskIO", "read_bytes write_bytes busy_time")
CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait steal guest guest_nice")
Swap = namedtuple("Swap", "total used free percent sin sout")


def collector(clock: FakeClock, processes: tuple[str, ...] = ()) -> HostCollector:
    return HostCollector(labels=TARGET, processes=processes, clock=clock)


def find(samples: list[Sample], metric: str, **labels: str) -> list[Sample]:
    return [
        s
        for s in samples
        if s.metric == metric and all(dict(s.labels).get(k) == v for k, v in labels.items())
    ]


def one(samples: list[Sample], metric: str, **labels: str) -> Sample:
    found = find(samples, metric, **labels)
    assert len(found) == 1, (metric, labels, found)
    return found[0]


def is_rate(s: Sample) -> bool:
    return s.metric.endswith("_per_second") or s.metric in {
        "host_cpu_usage_percent",
        "host_cpu_mode_percent",
        "host_disk_io_time_percent",
    }


def test_first_collect_has_gauges_with_target_labels_and_no_rates() -> None:
    clock = FakeClock()
    samples = collector(clock).collect()

    for metric in (
        "host_memory_used_percent",
        "host_memory_available_bytes",
        "host_memory_total_bytes",
        "host_swap_used_percent",
        "host_load1",
        "host_load5",
        "host_load15",
        "host_load1_per_cpu",
        "host_uptime_seconds",
        "host_cpu_count",
        "host_processes_total",
    ):
        assert one(samples, metric).value is not None, metric
    assert 0.0 <= one(samples, "host_memory_used_percent").value <= 100.0  # type: ignore[operator]
    assert one(samples, "host_uptime_seconds").value > 0  # type: ignore[operator]
    assert one(samples, "host_cpu_count").value == float(psutil.cpu_count())
    assert find(samples, "host_filesystem_used_percent")
    assert [s for s in samples if is_rate(s)] == []
    for s in samples:
        assert set(TARGET) <= set(s.labels), s
        assert s.ts == clock.now()


def test_second_collect_has_cpu_usage_and_non_negative_rates() -> None:
    clock = FakeClock()
    host = collector(clock)
    host.collect()
    time.sleep(0.05)  # cpu_times ticks every 10 ms; let a few pass between the readings
    clock.advance(15)
    samples = host.collect()

    usage = one(samples, "host_cpu_usage_percent").value
    assert usage is not None
    assert 0.0 <= usage <= 100.0
    modes = find(samples, "host_cpu_mode_percent")
    assert {"user", "system", "idle"} <= {dict(s.labels)["mode"] for s in modes}
    assert sum(s.value for s in modes if s.value is not None) == pytest.approx(100.0)
    rates = [s for s in samples if s.metric.endswith("_per_second")]
    assert all(s.value is not None and s.value >= 0 for s in rates)
    nics = set(psutil.net_io_counters(pernic=True)) - {"lo"}
    assert {
        dict(s.labels)["device"] for s in find(samples, "host_network_receive_bytes_per_second")
    } == nics
    assert not find(samples, "host_network_receive_bytes_per_second", device="lo")
    for s in find(samples, "host_disk_io_time_percent"):
        assert s.value is not None
        assert 0.0 <= s.value <= 100.0


def test_process_check_own_process_running_and_missing_name_zero() -> None:
    own = psutil.Process().name()
    missing = "no-such-process-alertd-test"
    samples = collector(FakeClock(), (own, missing)).collect()

    assert one(samples, "host_process_running", process=own).value == 1.0
    assert one(samples, "host_process_count", process=own).value >= 1.0  # type: ignore[operator]
    assert one(samples, "host_process_running", process=missing).value == 0.0
    assert one(samples, "host_process_count", process=missing).value == 0.0
    assert one(samples, "host_processes_total").value >= 2.0  # type: ignore[operator]


def test_process_check_matches_name_or_argv0_and_tolerates_unreadable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    procs = [
        {"name": "nginx", "cmdline": ["nginx: master process /usr/sbin/nginx"]},
        {"name": "python3", "cmdline": ["/usr/local/bin/agent", "--flag"]},
        {"name": None, "cmdline": None},  # AccessDenied / ZombieProcess -> ad_value
        {"name": "agent", "cmdline": []},  # kernel thread style: no argv
        {"name": "bash", "cmdline": ["-bash"]},
    ]

    def fake_iter(attrs: list[str]) -> Iterator[Any]:
        assert attrs == ["name", "cmdline"]
        return iter([SimpleNamespace(info=info) for info in procs])

    monkeypatch.setattr(psutil, "process_iter", fake_iter)
    samples = collector(FakeClock(), ("agent", "nginx", "sshd")).collect()

    assert one(samples, "host_process_count", process="agent").value == 2.0
    assert one(samples, "host_process_count", process="nginx").value == 1.0
    assert one(samples, "host_process_running", process="sshd").value == 0.0
    assert one(samples, "host_processes_total").value == 5.0


def test_pseudo_filesystems_never_appear_on_real_host() -> None:
    samples = collector(FakeClock()).collect()

    fs = [s for s in samples if s.metric.startswith("host_filesystem_")]
    assert fs
    for s in fs:
        labels = dict(s.labels)
        assert labels["fstype"] not in {"tmpfs", "proc", "overlay", "sysfs", "devtmpfs"}
        assert not labels["mountpoint"].startswith(("/proc", "/sys", "/dev/", "/run"))


def test_filesystem_exclusions_and_dedupe(monkeypatch: pytest.MonkeyPatch) -> None:
    parts = [
        Part("/dev/sda1", "/", "ext4", "rw"),
        Part("/dev/sda1", "/", "ext4", "rw"),  # listed twice
        Part("/dev/sda1", "/srv/bind", "ext4", "rw"),  # same device, other mountpoint: kept
        Part("tmpfs", "/tmp", "tmpfs", "rw"),
        Part("overlay", "/", "overlay", "rw"),
        Part("/dev/loop3", "/snap/core/1", "ext4", "ro"),
        Part("/dev/sdb1", "/run/media/usb", "vfat", "rw"),
        Part("/dev/sdc1", "/var/lib/docker/overlay2", "xfs", "rw"),
        Part("/dev/sdd1", "/running", "xfs", "rw"),  # not under /run
    ]
    monkeypatch.setattr(psutil, "disk_partitions", lambda all=False: parts)
    monkeypatch.setattr(psutil, "disk_usage", lambda path: Usage(1000, 250, 750, 25.0))
    samples = collector(FakeClock()).collect()

    used = find(samples, "host_filesystem_used_percent")
    assert sorted(dict(s.labels)["mountpoint"] for s in used) == ["/", "/running", "/srv/bind"]
    root = one(samples, "host_filesystem_used_percent", mountpoint="/")
    assert root.value == pytest.approx(25.0)
    assert dict(root.labels) == {
        **dict(TARGET),
        "mountpoint": "/",
        "device": "/dev/sda1",
        "fstype": "ext4",
    }
    assert one(samples, "host_filesystem_free_bytes", mountpoint="/").value == 750.0
    assert one(samples, "host_filesystem_size_bytes", mountpoint="/").value == 1000.0


def test_failing_disk_usage_yields_unknown_and_collection_continues(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_parts = psutil.disk_partitions(all=False)
    real_usage = psutil.disk_usage
    stale = Part("nas:/export", "/mnt/stale", "nfs4", "rw")
    monkeypatch.setattr(psutil, "disk_partitions", lambda all=False: [*real_parts, stale])

    def usage(path: str) -> Any:
        if path == "/mnt/stale":
            raise OSError(116, "Stale file handle")
        return real_usage(path)

    monkeypatch.setattr(psutil, "disk_usage", usage)
    host = collector(FakeClock())
    with caplog.at_level(logging.WARNING, logger="alertd.collect.host"):
        samples = host.collect()
        host.collect()

    for metric in ("used_percent", "free_bytes", "size_bytes"):
        s = one(samples, f"host_filesystem_{metric}", mountpoint="/mnt/stale")
        assert s.unknown
    others = [s for s in find(samples, "host_filesystem_used_percent") if not s.unknown]
    assert others
    assert one(samples, "host_memory_used_percent").value is not None
    assert host.errors_total == 0
    assert len([r for r in caplog.records if "/mnt/stale" in r.getMessage()]) == 1


def test_network_counter_going_backwards_skips_then_reseeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readings = iter(
        [
            {"eth0": NetIO(1000, 2000, 0, 0, 5, 0, 0, 0), "lo": NetIO(1, 1, 0, 0, 0, 0, 0, 0)},
            {"eth0": NetIO(2500, 500, 0, 0, 5, 0, 0, 0), "lo": NetIO(9, 9, 0, 0, 0, 0, 0, 0)},
            {"eth0": NetIO(4000, 2000, 0, 0, 35, 0, 0, 0), "lo": NetIO(9, 9, 0, 0, 0, 0, 0, 0)},
        ]
    )
    monkeypatch.setattr(psutil, "net_io_counters", lambda pernic=False: next(readings))
    clock = FakeClock()
    host = collector(clock)

    assert not find(host.collect(), "host_network_receive_bytes_per_second")
    clock.advance(15)
    second = host.collect()
    clock.advance(15)
    third = host.collect()

    assert all(s.value is not None and s.value >= 0 for s in second + third if is_rate(s))
    assert not find(second, "host_network_receive_bytes_per_second")  # reset: skipped
    assert one(second, "host_network_transmit_bytes_per_second").value == 100.0
    assert one(third, "host_network_receive_bytes_per_second").value == 100.0  # from 500
    assert one(third, "host_network_receive_errors_per_second").value == 2.0
    assert not find(third, "host_network_receive_bytes_per_second", device="lo")


def test_disk_rates_skip_virtual_devices_and_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter(
        [
            {d: DiskIO(0, 0, 0) for d in ("sda", "sda1", "loop0", "ram0", "zram0", "nvme0n1")},
            {
                "sda": DiskIO(30_000, 15_000, 3_000),
                "sda1": DiskIO(30_000, 15_000, 3_000),
                "loop0": DiskIO(99, 99, 99),
                "ram0": DiskIO(99, 99, 99),
                "zram0": DiskIO(99, 99, 99),
                "nvme0n1": DiskIO(0, 0, 20_000),  # busy longer than the interval
            },
        ]
    )
    monkeypatch.setattr(psutil, "disk_io_counters", lambda perdisk=False: next(readings))
    clock = FakeClock()
    host = collector(clock)
    host.collect()
    clock.advance(15)
    samples = host.collect()

    devices = {dict(s.labels)["device"] for s in samples if s.metric.startswith("host_disk_")}
    assert devices == {"sda", "nvme0n1"}
    assert one(samples, "host_disk_read_bytes_per_second", device="sda").value == 2000.0
    assert one(samples, "host_disk_write_bytes_per_second", device="sda").value == 1000.0
    assert one(samples, "host_disk_io_time_percent", device="sda").value == pytest.approx(20.0)
    assert one(samples, "host_disk_io_time_percent", device="nvme0n1").value == 100.0


def test_cpu_percent_from_cpu_times_delta(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter(
        [
            CpuTimes(100, 0, 50, 1000, 10, 0, 5, 0),
            CpuTimes(130, 0, 60, 1050, 20, 0, 25, 0),  # guest is inside user: not a mode
        ]
    )
    monkeypatch.setattr(psutil, "cpu_times", lambda percpu=False: next(readings))
    clock = FakeClock()
    host = collector(clock)

    assert not find(host.collect(), "host_cpu_usage_percent")
    clock.advance(15)
    samples = host.collect()

    assert one(samples, "host_cpu_usage_percent").value == pytest.approx(40.0)
    modes = {dict(s.labels)["mode"]: s.value for s in find(samples, "host_cpu_mode_percent")}
    assert modes == pytest.approx(
        {"user": 30.0, "nice": 0.0, "system": 10.0, "idle": 50.0, "iowait": 10.0, "steal": 0.0}
    )


def test_swap_is_zero_without_swap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psutil, "swap_memory", lambda: Swap(0, 0, 0, 0.0, 0, 0))
    samples = collector(FakeClock()).collect()

    assert one(samples, "host_swap_used_percent").value == 0.0


def test_failing_section_is_isolated_counted_and_unknown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    host = collector(clock)
    host.collect()  # memory works once, so its series are known

    def broken() -> Any:
        raise RuntimeError("meminfo unreadable")

    monkeypatch.setattr(psutil, "virtual_memory", broken)
    with caplog.at_level(logging.WARNING, logger="alertd.collect.host"):
        clock.advance(15)
        samples = host.collect()
        clock.advance(15)
        host.collect()

    assert host.errors_total == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # the same error again is not logged again
    assert "memory" in warnings[0].getMessage()
    assert one(samples, "host_memory_used_percent").unknown
    assert one(samples, "host_swap_used_percent").unknown
    assert one(samples, "host_load1").value is not None
    assert one(samples, "host_cpu_count").value is not None
    assert find(samples, "host_filesystem_used_percent")

    monkeypatch.undo()
    clock.advance(15)
    assert one(host.collect(), "host_memory_used_percent").value is not None
    assert host.errors_total == 2
