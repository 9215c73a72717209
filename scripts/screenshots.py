"""Screenshots of the real app on demo data: main.svg (with the pace curves), detail-failed.svg,
help.svg and waste.svg (the cost meter's detail).

The demo's own batch (200 article records, the demo fault plan: 503 burst, 429 storm, permanent 400s,
a failed run, a slow item) runs in a real headless worker against the simulator, and the real
app views its checkpoint mid-run. The API key is a dummy and is checked never to be on screen.

    .venv/bin/python scripts/screenshots.py [--out screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from pathlib import Path

from tuibatch.cli import run_options
from tuibatch.demo import DEMO_AGENT, INSTRUCTION, schema_path, write_demo
from tuibatch.sim import SimulatorThread, demo_fault_plan
from tuibatch.states import ItemState
from tuibatch.ui.app import BatchApp
from tuibatch.ui.detail import DetailScreen
from tuibatch.ui.header import pause_text
from tuibatch.ui.help import HelpScreen
from tuibatch.ui.waste import WasteScreen
from tuibatch.ui.worker import WorkerProcess

API_KEY = "AIzaDEMO-never-on-screen-0123456789"
SIZE = (110, 34)


async def shoot(out: Path, work: Path) -> None:
    items = write_demo(work, 200)  # the very batch `tuibatch demo` runs
    keys = [json.loads(line)["key"] for line in items.read_text().splitlines()]
    db = work / "items.tuibatch.db"
    with SimulatorThread(run_seconds=1.5, faults=demo_fault_plan(keys)) as sim:
        env = dict(os.environ, GOOGLE_GEMINI_BASE_URL=sim.url, GEMINI_API_KEY=API_KEY)
        env.pop("GOOGLE_API_KEY", None)
        worker = WorkerProcess(
            run_options(
                [
                    str(items),
                    f"--db={db}",
                    "--agent",
                    DEMO_AGENT,
                    "--instruction",
                    INSTRUCTION,
                    "--schema",
                    str(schema_path(items)),
                    "--concurrency",
                    "8",
                    "--budget",
                    "0.80",
                    "--poll-interval",
                    "0.3",
                    "--retry-initial",
                    "0.5",
                ]
            ),
            env=env,
        )
        worker.start()
        app = BatchApp(db, worker=worker, budget=0.80, title=items.name)
        try:
            async with app.run_test(size=SIZE) as pilot:
                await asyncio.wait_for(app.loaded.wait(), 30)
                while app.snap.totals.counts.get(ItemState.DONE, 0) < 52:
                    await pilot.pause(0.2)
                await pilot.press("f", "t")  # follow the running items; show the pace
                while sum(app.pace.launches) == 0:
                    await pilot.pause(0.1)
                for _ in range(40):  # catch the 429 storm's back-off in the header
                    if "backing off" in pause_text(app.snap.control, app.now()):
                        break
                    await pilot.pause(0.2)
                for _ in range(60):  # and the 429s in the pace curve (read every few seconds)
                    if sum(app.pace.limited):
                        break
                    await pilot.pause(0.2)
                await pilot.pause(0.3)
                save(app, out / "main.svg")
                await pilot.press("f", "5")
                failed = app.snap.totals.counts.get(ItemState.FAILED, 0)
                while not (app.table.idle and app.table.total >= failed and app.table.current):
                    await pilot.pause(0.05)
                await pilot.press("enter")
                while not (
                    isinstance(app.screen, DetailScreen) and app.screen.query("#detail-history")
                ):
                    await pilot.pause(0.05)
                await pilot.wait_for_scheduled_animations()
                await pilot.pause()
                save(app, out / "detail-failed.svg")
                await pilot.press("escape", "0", "question_mark")
                while not (isinstance(app.screen, HelpScreen) and app.screen.query("#help-table")):
                    await pilot.pause(0.05)
                await pilot.wait_for_scheduled_animations()
                await pilot.pause()
                save(app, out / "help.svg")
                await pilot.press("escape", "w")
                while not (
                    isinstance(app.screen, WasteScreen) and app.screen.query("#waste-summary")
                ):
                    await pilot.pause(0.05)
                await pilot.wait_for_scheduled_animations()
                await pilot.pause()
                save(app, out / "waste.svg")
                await pilot.press("escape")
        finally:
            worker.terminate()
            if worker.wait(15) is None:
                worker.kill()


def save(app: BatchApp, path: Path) -> None:
    svg = app.export_screenshot(title="tuibatch")
    if API_KEY in svg or "AIza" in svg:
        raise SystemExit(f"{path}: the API key is on screen")
    path.write_text(svg, encoding="utf-8")
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent.parent / "screenshots"
    )
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(shoot(a.out, Path(d)))


if __name__ == "__main__":
    main()
