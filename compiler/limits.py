"""The front end's limits: what a spec may ask of the compiler before it says no.

A spec is a program, and a hostile or mistaken one can ask for a number with ten billion digits,
a list of 10^10 zeros, a recursion that doubles forty times or an expression nested 5,000 deep.
Each of those is refused with a located diagnostic, long before memory, Python's recursion limit
or the user's patience runs out. docs/language.md ("Limits") states the same figures; they are
far above what any network of the zoo needs (in brackets: the zoo's largest).

    integers      |n| <= 2^63 - 1, the range of i64 (every result of + - * // % ** checked;
                  `**` checked before it is computed)
    floats        finite: a result that overflows to infinity or is NaN is an error
    lists         at most MAX_LIST items (a list, a `range`, `[0] * n`, `a + b`)
    `* n`         at most MAX_REPEAT copies of a stage
    nesting       MAX_NESTING levels of the syntax tree (brackets, operators, bodies) [15]
    files         MAX_SOURCE_BYTES per `.arch` file; MAX_FILES files per program
    graph         MAX_NODES op nodes per compilation, every network and training step together
    work          MAX_STEPS evaluation steps (an expression, a statement, a list item built;
                  NODE_STEPS for an op node or a block instance) and MAX_SECONDS of expansion per
                  compilation [4,106 steps, 857 nodes: densenet121]
    sizes         a dimension at most MAX_DIM; a weight tensor at most MAX_WEIGHT_ELEMENTS
                  elements, all weights of a network together at most MAX_TOTAL_WEIGHTS
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field

MAX_INT = 2**63 - 1
MAX_LIST = 100_000  # a tenth of MAX_STEPS: building the longest list leaves budget for using it
MAX_REPEAT = 10_000
MAX_NESTING = 100
MAX_SOURCE_BYTES = 1 << 20
MAX_FILES = 256
MAX_NODES = 50_000
MAX_STEPS = 1_000_000
MAX_SECONDS = 20.0
NODE_STEPS = 10  # what an op node or a block instance costs in steps (about their share of the time)
MAX_DIM = 2**31 - 1
MAX_WEIGHT_ELEMENTS = 2**31 - 1  # 8 GiB of f32: ONNX's protobuf and most runtimes stop before
MAX_TOTAL_WEIGHTS = 2**34  # 64 GiB of f32

CHECK_CLOCK_EVERY = 4096  # steps between two looks at the clock


class OutOfRange(Exception):
    """A compile-time number outside the limits above; the text is shown to the user."""


class OverBudget(Exception):
    """The compilation used up one of its budgets; `what` names it for the message."""

    def __init__(self, what: str, limit: str) -> None:
        super().__init__(what)
        self.what = what
        self.limit = limit


@dataclass
class Budget:
    """The work one compilation may do (every network and training step of a file together)."""

    steps: int = MAX_STEPS
    nodes: int = MAX_NODES
    seconds: float = MAX_SECONDS
    used_steps: int = 0
    used_nodes: int = 0
    reported: bool = False  # the one diagnostic of a spent budget has been given
    deadline: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.seconds

    def step(self, n: int = 1) -> None:
        before = self.used_steps
        self.used_steps += n
        if self.used_steps > self.steps:
            raise OverBudget("evaluation steps", f"{self.steps:,}")
        if before // CHECK_CLOCK_EVERY != self.used_steps // CHECK_CLOCK_EVERY and time.monotonic() > self.deadline:
            raise OverBudget("time", f"{self.seconds:g} s")

    def node(self) -> None:
        self.used_nodes += 1
        if self.used_nodes > self.nodes:
            raise OverBudget("graph nodes", f"{self.nodes:,}")


def checked_number(v: int | float, what: str = "the result") -> int | float:
    """`v` if it is within the limits, else OutOfRange saying how it is not (`what`: "the result",
    "the literal": the subject of the message)."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        if -MAX_INT <= v <= MAX_INT:
            return v
        shown = f"{v:,}" if abs(v).bit_length() <= 100 else f"a number of {_digits(v)} digits"
        raise OutOfRange(f"integer overflow: {what} is {shown}, and integers are limited to the range of i64 "
                         f"(|n| <= 2^63 - 1 = {MAX_INT:,})")
    if isinstance(v, float):
        if math.isfinite(v):
            return v
        raise OutOfRange(f"{what} is not a number (NaN)" if math.isnan(v) else
                         f"float overflow: {what} is too large for a 64-bit float")
    if isinstance(v, complex):
        raise OutOfRange("the result is a complex number (a negative number to a fractional power)")
    return v


def _digits(v: int) -> str:
    bits = abs(v).bit_length()
    return f"{int(bits * math.log10(2)) + 1:,}" if bits > 3000 else f"{len(str(abs(v))):,}"


def check_power(base: int | float, exponent: int | float) -> None:
    """OutOfRange before `base ** exponent` is computed if it cannot be within the limits
    (`10 ** 10 ** 10` would take minutes and gigabytes to find out)."""
    if base == 0 and exponent < 0:
        raise OutOfRange("zero to a negative power (a division by zero)")
    if isinstance(base, bool) or isinstance(exponent, bool):
        return
    if abs(base) <= 1 or exponent <= 0:
        return
    magnitude = exponent * math.log2(abs(base))  # log2 of the result's size
    if isinstance(base, int) and isinstance(exponent, int):
        if magnitude > 64:
            raise OutOfRange(f"integer overflow: {base} ** {exponent} is about 2^{magnitude:,.0f}, and integers "
                             f"are limited to the range of i64 (|n| <= 2^63 - 1)")
    elif magnitude > 1024:
        raise OutOfRange("float overflow: the result is too large for a 64-bit float")


def list_length(n: int, what: str) -> int:
    """`n` if a list of n items is within MAX_LIST, else OutOfRange naming `what` made it."""
    if n > MAX_LIST:
        raise OutOfRange(f"{what} would have {n:,} items; lists are limited to {MAX_LIST:,}")
    return n


def range_length(start: int, stop: int, step: int) -> int:
    """len(range(start, stop, step)) computed without building it (`range(10**100)`)."""
    if step == 0:
        raise OutOfRange("`range` step is zero")
    n = (stop - start + step - (1 if step > 0 else -1)) // step
    return max(0, n)


RECURSION_ROOM = 20_000  # Python frames: the deepest spec the limits allow (64 nested block instances,
# each ~15 frames, around an expression of MAX_NESTING levels, ~3 frames each) needs about 1,300


@contextlib.contextmanager
def recursion_room():
    """Python's recursion limit raised for the front end's recursive passes, then restored. The
    limits above bound the depth those passes reach, so this is headroom, not a way round them."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, RECURSION_ROOM))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)
