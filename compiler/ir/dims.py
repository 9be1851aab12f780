"""Symbolic tensor dimensions.

A `Dim` is an integer polynomial over symbols (`B`, `T`, `H`) and floor-division atoms,
kept in a canonical form so that two dims are equal exactly when their forms are equal:

    Dim.sym("H") + 2 - 3            ->  H - 1
    (Dim.sym("H") + 2*1 - 3) // 1 + 1  ->  H
    (Dim.sym("H") - 1) // 2 + 1     ->  (H - 1)//2 + 1
    (16*h) // 2                     ->  8*h

`(k*a + r) // k` rewrites to `a + r // k` for integer-valued `a`, which makes the conv
output-size rule collapse to the input size for "same"-style padding even when symbolic.

Symbols of the IR are sizes of the input that vary from call to call (`B`, `T`, `H`). A backend
that writes code for many instances at once (the PyTorch emitter: one class per block) also
uses *static* symbols, sizes fixed when a module is built but not known to the rule that sees
them: names starting with `=` (a constructor parameter: `=cout`), `~` (a size all uses happen to
share: `~128`) or `?` (a size nobody tracks).
Shape rules may compute with them like with constants; only runtime symbols make a size
"symbolic" for checks that need a fixed size (`Dim.is_static`), and two dims that differ only
through static symbols may still be equal when the module is built (`undecided`). A division by
a static symbol (`// stride`) stays an atom.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Union

Atom = Union[str, "FloorDiv"]
Monomial = tuple  # tuple[Atom, ...], sorted by _atom_key


def _atom_key(atom: Atom) -> str:
    return atom if isinstance(atom, str) else "~" + str(atom)


@dataclass(frozen=True, slots=True)
class FloorDiv:
    num: "Dim"
    den: "int | Dim"  # a Dim only when it is not a constant (a static symbol: `// stride`)

    def __str__(self) -> str:
        return self.render(str)

    def render(self, name: Callable[[str], str]) -> str:
        inner = self.num.render(name)
        if len(self.num.terms) > 1 or self.num.terms[0][1] != 1:
            inner = f"({inner})"
        den = self.den.render(name) if isinstance(self.den, Dim) else str(self.den)
        if isinstance(self.den, Dim) and (len(self.den.terms) > 1 or self.den.terms[0][1] != 1):
            den = f"({den})"
        return f"{inner}//{den}"

    def divisor(self, env: Mapping[str, int]) -> int:
        return self.den if isinstance(self.den, int) else self.den.evaluate(env)


@dataclass(frozen=True, slots=True)
class Dim:
    """A canonical integer polynomial; `terms` is sorted and holds no zero coefficients."""

    terms: tuple[tuple[Monomial, int], ...]

    # construction ---------------------------------------------------------------------
    @staticmethod
    def const(n: int) -> Dim:
        return Dim(((((), int(n)),) if n else ()))

    @staticmethod
    def sym(name: str) -> Dim:
        return Dim((((name,), 1),))

    @staticmethod
    def of(x: int | Dim) -> Dim:
        return x if isinstance(x, Dim) else Dim.const(x)

    @staticmethod
    def _from(acc: dict) -> Dim:
        items = [(m, c) for m, c in acc.items() if c != 0]
        items.sort(key=lambda mc: (len(mc[0]) == 0, [_atom_key(a) for a in mc[0]]))
        return Dim(tuple(items))

    # queries --------------------------------------------------------------------------
    @property
    def is_const(self) -> bool:
        return all(len(m) == 0 for m, _ in self.terms)

    @property
    def value(self) -> int:
        if not self.is_const:
            raise ValueError(f"dimension {self} is symbolic")
        return self.terms[0][1] if self.terms else 0

    def symbols(self) -> set[str]:
        out: set[str] = set()
        for mono, _ in self.terms:
            for atom in mono:
                if isinstance(atom, str):
                    out.add(atom)
                else:
                    out |= atom.num.symbols() | (atom.den.symbols() if isinstance(atom.den, Dim) else set())
        return out

    @property
    def is_static(self) -> bool:
        """True when no runtime symbol (`B`, `T`) occurs: a size fixed once a module is built."""
        return all(is_static_symbol(s) for s in self.symbols())

    def evaluate(self, env: Mapping[str, int]) -> int:
        total = 0
        for mono, coeff in self.terms:
            prod = coeff
            for atom in mono:
                prod *= env[atom] if isinstance(atom, str) else atom.num.evaluate(env) // atom.divisor(env)
            total += prod
        return total

    def substitute(self, env: Mapping[str, Dim]) -> Dim:
        total = Dim.const(0)
        for mono, coeff in self.terms:
            prod = Dim.const(coeff)
            for atom in mono:
                if isinstance(atom, str):
                    prod = prod * env.get(atom, Dim.sym(atom))
                else:
                    den = atom.den.substitute(env) if isinstance(atom.den, Dim) else atom.den
                    prod = prod * (atom.num.substitute(env) // den)
            total = total + prod
        return total

    # arithmetic -----------------------------------------------------------------------
    def __add__(self, other: int | Dim) -> Dim:
        acc = dict(self.terms)
        for m, c in Dim.of(other).terms:
            acc[m] = acc.get(m, 0) + c
        return Dim._from(acc)

    __radd__ = __add__

    def __neg__(self) -> Dim:
        return Dim(tuple((m, -c) for m, c in self.terms))

    def __sub__(self, other: int | Dim) -> Dim:
        return self + (-Dim.of(other))

    def __rsub__(self, other: int) -> Dim:
        return Dim.of(other) - self

    def __mul__(self, other: int | Dim) -> Dim:
        acc: dict = {}
        for m1, c1 in self.terms:
            for m2, c2 in Dim.of(other).terms:
                mono = tuple(sorted(m1 + m2, key=_atom_key))
                acc[mono] = acc.get(mono, 0) + c1 * c2
        return Dim._from(acc)

    __rmul__ = __mul__

    def __floordiv__(self, k: int | Dim) -> Dim:
        k = Dim.of(k)
        if not k.is_const and k.is_static:  # `(h + 2)//stride`: kept as written
            return self if not self.terms else Dim((((FloorDiv(self, k),), 1),))
        if not k.is_const or k.value <= 0:
            raise ValueError(f"cannot divide {self} by {k}")
        den = k.value
        if den == 1:
            return self
        nested = self._single_floordiv()
        if nested is not None:  # (x//m + c)//n = (x + c*m)//(m*n) for integer x and m, n > 0
            atom, c = nested
            return (atom.num + c * atom.den) // (atom.den * den)
        exact = {m: c // den for m, c in self.terms if c % den == 0 and m}
        rest = Dim._from({m: c for m, c in self.terms if not (c % den == 0 and m)})
        quotient = Dim._from(exact)
        if rest.is_const:
            return quotient + rest.value // den
        # pull whole multiples of `den` out of the constant term: (a + 5)//2 = (a + 1)//2 + 2
        const = next((c for m, c in rest.terms if not m), 0)
        shift = const // den
        rest = rest - shift * den
        return quotient + shift + Dim((((FloorDiv(rest, den),), 1),))

    def _single_floordiv(self) -> tuple[FloorDiv, int] | None:
        """(atom, c) when self is `x//m + c` with a constant m, else None."""
        atoms = [(m, c) for m, c in self.terms if m]
        if len(atoms) != 1 or atoms[0][1] != 1 or len(atoms[0][0]) != 1:
            return None
        atom = atoms[0][0][0]
        if not isinstance(atom, FloorDiv) or not isinstance(atom.den, int):
            return None
        return atom, next((c for m, c in self.terms if not m), 0)

    def ceildiv(self, k: int) -> Dim:
        return -((-self) // k)

    def exact_div(self, other: int | Dim) -> Dim | None:
        """`self / other` when it divides exactly as polynomials (other a single term), else None."""
        other = Dim.of(other)
        if len(other.terms) != 1:
            return None
        (omono, ocoeff), = other.terms
        acc = {}
        for mono, coeff in self.terms:
            rest = list(mono)
            for atom in omono:
                if atom not in rest:
                    return None
                rest.remove(atom)
            if coeff % ocoeff:
                return None
            acc[tuple(rest)] = coeff // ocoeff
        return Dim._from(acc)

    # printing -------------------------------------------------------------------------
    def __str__(self) -> str:
        return self.render(str)

    def render(self, name: Callable[[str], str]) -> str:
        """The polynomial as text, each symbol written as `name(symbol)`."""
        if not self.terms:
            return "0"
        parts = []
        for i, (mono, coeff) in enumerate(self.terms):
            sign = "-" if coeff < 0 else "+"
            mag = abs(coeff)
            wrap = len(mono) > 1 or mag != 1  # `2*(h//3)`, not `2*h//3`
            body = "*".join(name(a) if isinstance(a, str) else f"({a.render(name)})" if wrap else a.render(name)
                            for a in mono)
            text = body if mono and mag == 1 else (f"{mag}*{body}" if mono else str(mag))
            if i == 0:
                parts.append(("-" if coeff < 0 else "") + text)
            else:
                parts.append(f" {sign} {text}")
        return "".join(parts)

    def __repr__(self) -> str:
        return f"Dim({self})"


Shape = tuple[Dim, ...]


def is_static_symbol(name: str) -> bool:
    """`=cout`, `~128`, `?3`: a size fixed when the module is built; `B`, `H`: a size of the input."""
    return name[:1] in ("=", "~", "?")


def undecided(a: Dim, b: Dim) -> bool:
    """Two dims whose equality only building the module decides (a static symbol in either)."""
    return not all(not is_static_symbol(s) for s in a.symbols() | b.symbols())


def shape_str(shape: Shape) -> str:
    """`(B, 64, 56, 56)`."""
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def shape_of(*dims: int | Dim) -> Shape:
    return tuple(Dim.of(d) for d in dims)


def numel(shape: Shape) -> Dim:
    total = Dim.const(1)
    for d in shape:
        total = total * d
    return total
