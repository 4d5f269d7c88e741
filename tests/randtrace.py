"""Random valid traces for the designs' property tests (hypothesis).

Every generated trace is valid by construction: objects are created before
use, freed once, and everything still live is freed at the end, so a design
must come back to the areas it keeps by rule (e.g. the last kprobe page).
"""
from __future__ import annotations

from hypothesis import strategies as st

ACTIONS = ("load", "init", "unload", "patch", "prog", "unprog", "tattach", "tupdate",
           "tdetach", "freg", "fupd", "funreg", "kreg", "kopt", "kunreg")


@st.composite
def random_trace_rows(draw, max_actions: int = 40,
                      texts: tuple[int, ...] = (100, 5000, 300_000, 1_500_000, 2_100_000),
                      loader_work: bool = False):
    """A valid random trace touching every user, ending with everything freed."""
    acts = [("load", draw(st.integers(0, 10**9)))] + draw(
        st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(0, 10**9)), max_size=max_actions))
    rows: list[tuple] = []
    live = {"mod": {}, "prog": set(), "tramp": set(), "ftrace": set(), "kprobe": {}}
    n = 0
    for a, x in acts:
        n += 1
        name = f"o{n}"

        def pick(pool):
            keys = sorted(pool)
            return keys[x % len(keys)] if keys else None

        if a == "load":
            text = texts[x % len(texts)]
            rows.append(("module", "load", name, dict(
                text=text, rodata=x % 9000, ro_after_init=(x // 7) % 300, data=1 + x % 5000,
                init_text=(x // 3) % 6000, init_rodata=(x // 11) % 200, init_data=(x // 13) % 500,
                **(dict(relocs=x % 50, reloc_secs=(x // 5) % 4, alt_sites=x % 9,
                        orc_entries=(x // 17) % 60, mcount_locs=(x // 19) % 30)
                   if loader_work else {}))))
            live["mod"][name] = [text, False]
        elif a in ("init", "unload", "patch") and live["mod"]:
            m = pick(live["mod"])
            text, inited = live["mod"][m]
            if a == "init" and not inited:
                rows.append(("module", "init_done", m, {}))
                live["mod"][m][1] = True
            elif a == "unload":
                rows.append(("module", "unload", m, {}))
                del live["mod"][m]
            elif a == "patch" and text >= 5:
                rows.append(("module", "patch", m, dict(offset=x % (text - 4), len=5)))
        elif a == "prog":
            rows.append(("bpf", "prog_load", name, dict(size=1 + x % 20000)))
            live["prog"].add(name)
        elif a == "unprog" and live["prog"]:
            p = pick(live["prog"])
            rows.append(("bpf", "prog_unload", p, {}))
            live["prog"].discard(p)
        elif a == "tattach":
            rows.append(("bpf", "tramp_attach", name, dict(size=64 + x % 3000)))
            live["tramp"].add(name)
        elif a == "tupdate" and live["tramp"]:
            rows.append(("bpf", "tramp_update", pick(live["tramp"]), dict(size=64 + x % 3000)))
        elif a == "tdetach" and live["tramp"]:
            t = pick(live["tramp"])
            rows.append(("bpf", "tramp_detach", t, {}))
            live["tramp"].discard(t)
        elif a == "freg":
            rows.append(("ftrace", "ops_register", name, dict(size=100 + x % 400)))
            live["ftrace"].add(name)
        elif a == "fupd" and live["ftrace"]:
            rows.append(("ftrace", "ops_update", pick(live["ftrace"]), {}))
        elif a == "funreg" and live["ftrace"]:
            f = pick(live["ftrace"])
            rows.append(("ftrace", "ops_unregister", f, {}))
            live["ftrace"].discard(f)
        elif a == "kreg":
            rows.append(("kprobe", "register", name, dict(size=1 + x % 16)))
            live["kprobe"][name] = False
        elif a == "kopt" and live["kprobe"]:
            k = pick(live["kprobe"])
            if not live["kprobe"][k]:
                rows.append(("kprobe", "optimize", k, dict(size=128)))
                live["kprobe"][k] = True
        elif a == "kunreg" and live["kprobe"]:
            k = pick(live["kprobe"])
            rows.append(("kprobe", "unregister", k, {}))
            del live["kprobe"][k]
    for m in sorted(live["mod"]):
        rows.append(("module", "unload", m, {}))
    for p in sorted(live["prog"]):
        rows.append(("bpf", "prog_unload", p, {}))
    for t in sorted(live["tramp"]):
        rows.append(("bpf", "tramp_detach", t, {}))
    for f in sorted(live["ftrace"]):
        rows.append(("ftrace", "ops_unregister", f, {}))
    for k in sorted(live["kprobe"]):
        rows.append(("kprobe", "unregister", k, {}))
    return rows


def build(tb, rows):
    """Turn generated rows into a validated trace through a TraceBuilder."""
    for user, op, obj, sizes in rows:
        if op == "load":
            tb.module(obj, **sizes)
        else:
            tb.add(user, op, obj, **sizes)
    return tb.trace()
