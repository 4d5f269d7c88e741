"""Sizes of the x86-64 machine every design runs on.

All constants are those of x86-64 with 4-level paging, as in
``arch/x86/include/asm/page_types.h`` and ``pgtable_64_types.h`` (v6.1).
"""

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT          # arch/x86/include/asm/page_types.h
PMD_SHIFT = 21
PMD_SIZE = 1 << PMD_SHIFT            # 2 MiB, pgtable_64_types.h
PUD_SHIFT = 30
PUD_SIZE = 1 << PUD_SHIFT            # 1 GiB
PAGES_PER_PMD = PMD_SIZE // PAGE_SIZE  # 512
PAGES_PER_PUD = PUD_SIZE // PAGE_SIZE  # 262144

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30


def page_align(n: int) -> int:
    """``PAGE_ALIGN()``: round ``n`` bytes up to a whole page."""
    return (n + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def round_up(n: int, to: int) -> int:
    """``round_up()`` for any positive ``to`` (not only powers of two)."""
    return -(-n // to) * to


def pages(n: int) -> int:
    """``DIV_ROUND_UP(n, PAGE_SIZE)``: pages needed to hold ``n`` bytes."""
    return -(-n // PAGE_SIZE)
