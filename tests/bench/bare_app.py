"""The bench's peer: a bare FastAPI app with one async `/healthz`, nothing else.

`make bench` runs it on the web servers' uvicorn settings behind the vIP's nginx, so the
lab's own `/healthz` is compared with what the framework itself can do on this machine.
Run alone: uvicorn tests.bench.bare_app:app --host 127.0.3.11 --port 8000
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "alive", "node": "bare"}
