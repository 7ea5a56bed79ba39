"""The summary of a ``distill prompt`` run: :class:`PromptReport`, printed and written as JSON."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from distill.prompting.cost import Prices, SpendCap, usd
from distill.prompting.engine import RunStats
from distill.prompting.stats import cost_lines
from distill.prompting.repair import RepairRound
from distill.prompting.resample import RoundResult
from distill.prompting.stages import FileReport


TRUNCATION_HINT = "--max-tokens is too small for these answers: raise it (they are asked again with the new limit)"


@dataclass
class PromptReport:
    stats: RunStats
    files: list[FileReport]
    wall_s: float
    notes: list[str] = field(default_factory=list)
    prices: Prices | None = None
    budget: SpendCap | None = None
    rounds: list[RoundResult] = field(default_factory=list)
    repairs: list[RepairRound] = field(default_factory=list)  # --repair-rounds, per round

    @property
    def cap_reached(self) -> bool:
        return self.budget is not None and self.budget.reached

    def cost_lines(self) -> list[str]:
        """Tokens and cost: billed in this run, and what the answers served from the cache cost when asked."""
        return cost_lines(self.stats, self.prices, self.budget)

    def round_lines(self) -> list[str]:
        if not self.rounds:
            return []
        parts = [f"round {r.round}: {r.solved}/{r.questions} solved" + (f" ({r.not_asked} paths not asked)"
                                                                          if r.not_asked else "")
                 for r in self.rounds]
        return ["resampled unsolved questions: " + ", ".join(parts)]

    def repair_lines(self) -> list[str]:
        if not self.repairs:
            return []
        parts = [f"round {r.round}: {r.fixed}/{r.paths} now valid"
                 + "".join(f", {n} {what}" for n, what in ((r.failed, "failed"), (r.not_asked, "not asked")) if n)
                 for r in self.repairs]
        examples = sum(f.repair_examples for f in self.files)
        return [f"repaired invalid programs (sent back with the solver's error): {', '.join(parts)}; "
                f"{examples} repair example(s) written"]

    def format(self) -> str:
        s = self.stats
        lines = [
            f"teacher paths: {s.jobs} ({s.cached} from cache, {s.completed} asked now, {s.failed} failed"
            + (f", {s.not_asked} not asked" if s.not_asked else "") + ")",
            f"requests: {s.requests}  retries: {s.retries}",
            *self.cost_lines(),
            *self.round_lines(),
            *self.repair_lines(),
        ]
        if s.errors:
            lines.append("faults seen: " + ", ".join(f"{k} x{v}" for k, v in s.errors.most_common()))
        tot, cor = Counter(), Counter()
        for f in self.files:
            tot.update(f.total_by_style)
            cor.update(f.correct_by_style)
        lines.append("correct per style: " + ", ".join(
            f"{st} {cor[st]}/{tot[st]}" for st in tot))
        valid = self.valid_per_style()
        if valid is not None:
            lines.append("valid programs per style (the solver accepts them): " + ", ".join(
                f"{st} {valid[st]}/{tot[st]}" for st in tot))
        n_timeouts = sum(f.verify_timeouts for f in self.files)
        if n_timeouts:
            lines.append(f"verification timed out for {n_timeouts} path(s) (scored incorrect)")
        cut = self.truncated_per_style()
        if cut:
            lines.append("CUT at the token limit (finish_reason 'length', never counted correct) per style: "
                         + ", ".join(f"{st} {cut[st]}/{tot[st]}" for st in tot if cut[st]) + f"; {TRUNCATION_HINT}")
        if s.adaptation_note():
            lines.append(f"note: {s.adaptation_note()}")
        for f in self.files:
            cost = f.usage.cost(self.prices)
            lines.append(f"  {f.path}: {f.rows} rows -> {f.enriched.name}, {f.correct.name}; tokens this run "
                         f"{f.usage.prompt_tokens}+{f.usage.completion_tokens}"
                         + ("" if cost is None else f" {usd(cost)}")
                         + (f"; {f.not_asked} not asked" if f.not_asked else "")
                         + (f"; {f.repair_examples} repair example(s) -> {f.repairs.name}" if f.repairs else ""))
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"note: {n}" for f in self.files for n in f.notes]
        kept = [x for f in self.files for x in f.kept]
        if kept:
            stale = sum(f.stale for f in self.files)
            lines.append(f"KEPT {len(kept)} earlier answer(s) where this run's request failed ({stale} stale: "
                         f"asked with other settings, marked 'stale' in the enriched file; rerun to replace them): "
                         + ", ".join(kept[:10]) + (f" ... and {len(kept) - 10} more" if len(kept) > 10 else ""))
        failed = [x for f in self.files for x in f.failed]
        if failed:
            lines.append(f"FAILED paths ({len(failed)}; recorded as failed, rerun to retry them):")
            lines += [f"  {x}" for x in failed[:20]]
            if len(failed) > 20:
                lines.append(f"  ... and {len(failed) - 20} more")
        lines.append(f"wall time: {self.wall_s:.1f} s (requests {s.request_wall_s:.1f} s)")
        if self.cap_reached:
            lines.append(self.budget.stop_line())
        return "\n".join(lines)

    def valid_per_style(self) -> Counter | None:
        """Formal tasks: paths per style whose program the solver accepted; None when no file is formal."""
        counts = [f.valid_by_style for f in self.files if f.valid_by_style is not None]
        if not counts:
            return None
        out: Counter = Counter()
        for c in counts:
            out.update(c)
        return out

    def truncated_per_style(self) -> Counter:
        """Paths per style that stopped at the token limit (kept in the enriched file, never correct)."""
        cut: Counter = Counter()
        for f in self.files:
            cut.update(f.truncated_by_style)
        return +cut

    def as_dict(self) -> dict[str, Any]:
        tot, cor = Counter(), Counter()
        for f in self.files:
            tot.update(f.total_by_style)
            cor.update(f.correct_by_style)
        return {**self.stats.as_dict(), "wall_s": round(self.wall_s, 3),
                "correct_per_style": {st: [cor[st], tot[st]] for st in tot},
                "truncated_per_style": {st: [self.truncated_per_style()[st], tot[st]] for st in tot},
                **({"valid_per_style": {st: [valid[st], tot[st]] for st in tot}}
                   if (valid := self.valid_per_style()) is not None else {}),
                "verify_timeouts": sum(f.verify_timeouts for f in self.files),
                **({"truncated_hint": TRUNCATION_HINT} if self.truncated_per_style() else {}),
                "failed_paths": [x for f in self.files for x in f.failed],
                "kept_previous": [x for f in self.files for x in f.kept],
                "stale_paths": sum(f.stale for f in self.files),
                "notes": [*self.notes, *(n for f in self.files for n in f.notes)],
                "files": [str(f.path) for f in self.files],
                "usage": {"this_run": self.stats.paid.as_dict(self.prices),
                          "from_cache": self.stats.from_cache.as_dict(self.prices)},
                "prices": None if self.prices is None else self.prices.as_dict(),
                "max_spend": None if self.budget is None else self.budget.as_dict(),
                "resample": [r.as_dict() for r in self.rounds],
                "repair": [r.as_dict() for r in self.repairs],
                "repair_examples": {str(f.path): f.repair_examples for f in self.files if f.repairs},
                "file_usage": {str(f.path): {"this_run": f.usage.as_dict(self.prices),
                                             "from_cache": f.usage_cached.as_dict(self.prices),
                                             "not_asked": f.not_asked} for f in self.files}}
