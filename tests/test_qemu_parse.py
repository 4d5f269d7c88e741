"""Guest console and ftrace text -> events (no QEMU: hand-written inputs)."""

from __future__ import annotations

import base64
import gzip

import pytest

from execbench.workloads.recorders.qemu import boot, initramfs, parse

TRACE = """\
            init-1       [001] .....     3.698619: tracing_mark_write: insmod jbd2
          insmod-111     [000] .....     3.724909: module_alloc: (module_alloc+0x0/0xe0) size=167936
          insmod-111     [000] .N...     3.726479: <stack trace>
 => kprobe_trace_func
 => kprobe_dispatcher
 => kprobe_ftrace_handler
 => 0xffffffffc05180c8
 => module_alloc
 => load_module
 => __do_sys_finit_module
          insmod-111     [000] .....     3.727895: vmalloc_node_range: (__vmalloc_node_range+0x0/0x880) size=167936 align=4096 start=0xffffffffc0317000 end=0xffffffffff000000 vm_flags=0x100 caller=load_module+0xbb7/0x21a0
          insmod-111     [000] .....     3.728832: vmalloc_node_range_ret: (module_alloc+0x81/0xe0 <- __vmalloc_node_range) ret=0xffffffffc051a000
          insmod-111     [000] .....     3.738345: set_memory_ro: (set_memory_ro+0x0/0x30) addr=0xffffffffc051a000 npages=15
            init-1       [001] .....     3.900000: __get_insn_slot: (__get_insn_slot+0x0/0x1f0) cache=0xffffffffa1e4b2a0 sym="kprobe_insn_page" insn_size=16
          insmod-111     [000] .....     3.910000: module_load: jbd2
"""


def test_parse_fields_stack_and_context():
    df = parse.parse(TRACE)
    assert list(df.event) == ["tracing_mark_write", "module_alloc", "vmalloc_node_range",
                              "vmalloc_node_range_ret", "set_memory_ro", "__get_insn_slot",
                              "module_load"]
    alloc = df.iloc[1]
    # 3.724909 s -> 3_724_909_000 ns (microsecond text padded to nanoseconds)
    assert alloc.t_ns == 3_724_909_000
    assert (alloc.cpu, alloc.pid, alloc.comm) == (0, 111, "insmod")
    assert alloc["size"] == "167936"
    # kprobe frames and the bare trampoline address are dropped; owner is load_module
    assert alloc.stack == "module_alloc;load_module;__do_sys_finit_module"
    assert alloc.caller == "load_module"
    assert alloc.context == "insmod jbd2"
    # the vmalloc caller argument is a symbol+offset: its function names the owner
    assert df.iloc[2].caller == "load_module"
    # a return probe's site names the function that called the probed one
    assert df.iloc[3].ret == "0xffffffffc051a000" and df.iloc[3].caller == "module_alloc"
    assert df.iloc[4].npages == "15"
    assert df.iloc[5].type == "kprobe_insn_page" and "insn_size=16" in df.iloc[5].args
    assert df.iloc[6].type == "jbd2"
    assert list(df.seq) == list(range(7))


def test_parse_sorts_by_time_stably():
    text = ("   a-1  [000] .....  2.000000: vfree: (vfree+0x0/0x10) addr=0x1\n"
            "   b-2  [001] .....  1.000000: vfree: (vfree+0x0/0x10) addr=0x2\n"
            "   c-3  [001] .....  2.000000: vfree: (vfree+0x0/0x10) addr=0x3\n")
    df = parse.parse(text)
    assert list(df.addr) == ["0x2", "0x1", "0x3"]


def test_parse_rejects_garbage_with_line_number():
    with pytest.raises(parse.ParseError, match=r"t\.txt:2: unreadable"):
        parse.parse(TRACE.splitlines()[0] + "\nthis is not ftrace\n", "t.txt")


def _dump(name: str, body: bytes) -> bytes:
    b64 = base64.b64encode(gzip.compress(body, mtime=0))
    # the console wraps lines at 76 characters and ends them with CRLF
    lines = [b64[i:i + 76] for i in range(0, len(b64), 76)]
    return b"@@BEGIN " + name.encode() + b"@@\r\n" + b"\r\n".join(lines) + b"\r\n@@END " + name.encode() + b"@@\r\n"


def test_console_sections_decode_through_crlf_and_noise():
    console = (b"\x1bc\x1b[?7lSeaBIOS\r\n@@LOG 2.7 init start\r\n" + _dump("log", b"hello\nworld\n")
               + b"[   10.1] random kernel line\r\n" + _dump("trace", TRACE.encode()) + b"@@DONE@@\r\n")
    s = boot.sections(console, "c.txt")
    assert s["log"] == b"hello\nworld\n"
    assert s["trace"] == TRACE.encode()


def test_console_without_done_is_an_error():
    with pytest.raises(boot.BootError, match="did not finish"):
        boot.sections(_dump("log", b"x"), "c.txt")


def test_console_truncated_dump_is_an_error():
    with pytest.raises(boot.BootError, match="no @@END"):
        boot.sections(b"@@BEGIN trace@@\r\nAAAA\r\n@@DONE@@\r\n", "c.txt")


def test_cpio_newc_layout():
    data = initramfs.cpio_newc([("bin/x", initramfs.EXEC, b"abc")])
    # entries: "bin" (dir, added), "bin/x", then TRAILER!!!; header = 6 + 13*8 = 110 bytes
    assert data[:6] == b"070701"
    # first entry "bin": 110 + 4 ("bin\0") = 114 -> padded to 116; no data
    assert data[110:114] == b"bin\0"
    h2 = data[116:116 + 110]
    assert h2[:6] == b"070701"
    # mode field (2nd) of bin/x is 0o100755 = 0x81ed; filesize (7th) = 3
    assert h2[14:22] == b"000081ed"
    assert int(h2[54:62], 16) == 3
    # name "bin/x\0" (6) -> 110+6 = 116, already 4-aligned; then "abc" + 1 pad byte
    assert data[226:232] == b"bin/x\0" and data[232:236] == b"abc\0"
    assert data.endswith(b"TRAILER!!!\0" + b"\0" * ((4 - (110 + 11) % 4) % 4))
    assert len(data) % 4 == 0
    # deterministic: gzip without timestamp
    assert initramfs.build([("a", initramfs.FILE, b"1")]) == initramfs.build([("a", initramfs.FILE, b"1")])
