"""The hello service: proves it got its secret (without showing it) and keeps state in /data."""

import datetime
import hashlib
import os
from pathlib import Path

secret = os.environ["GREETING_SECRET"]
print("Hello from a SEML service!")
print("sha256 of my secret:", hashlib.sha256(secret.encode()).hexdigest())

# The protected volume: /data inside the service (SEML_VOLUME_DATA names the same folder).
data = Path(os.environ.get("SEML_VOLUME_DATA", "/data"))
log = data / "greetings.txt"
with log.open("a") as f:
    f.write(f"hello at {datetime.datetime.now(datetime.UTC).isoformat()}\n")
print(f"{log.name} now has {len(log.read_text().splitlines())} line(s)")
