"""Item 6: resident memory of the system's processes, read from ``/proc/<pid>/status``
(psutil is not a dependency): VmRSS now and VmHWM, the peak since the process started."""

from pathlib import Path


def memory_mb(pid: int) -> dict[str, float | None]:
    """``rss_mb`` and ``peak_rss_mb`` of a live process; None where Linux does not say."""
    fields = {"VmRSS": "rss_mb", "VmHWM": "peak_rss_mb"}
    result: dict[str, float | None] = dict.fromkeys(fields.values())
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return result
    for line in lines:
        name, _, value = line.partition(":")
        if name in fields:
            kilobytes = int(value.split()[0])
            result[fields[name]] = round(kilobytes / 1024, 1)
    return result
