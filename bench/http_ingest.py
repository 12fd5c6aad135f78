"""HTTP ingestion load: CLIENTS threads post an NDJSON file to `POST /v1/usage` in batches of
BATCH records over keep-alive connections; prints the rate and the batch latencies as JSON.

    python3 bench/http_ingest.py BASE_URL TOKEN FILE [CLIENTS] [BATCH]
"""

import http.client
import json
import queue
import sys
import threading
import time
import urllib.parse


def main():
    base, token, path = sys.argv[1], sys.argv[2], sys.argv[3]
    clients = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
    with open(path, "rb") as f:
        lines = f.readlines()
    bodies = [b"".join(lines[i:i + batch]) for i in range(0, len(lines), batch)]
    work = queue.Queue()
    for body in bodies:
        work.put(body)
    url = urllib.parse.urlparse(base)
    latencies, accepted, failures = [], [0], []
    lock = threading.Lock()

    def client():
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                return
            started = time.perf_counter()
            conn.request("POST", "/v1/usage", body=body, headers={
                "Authorization": "Bearer " + token, "Content-Type": "application/x-ndjson"})
            response = conn.getresponse()
            answer = response.read()
            took = time.perf_counter() - started
            with lock:
                latencies.append(took)
                if response.status == 200:
                    accepted[0] += json.loads(answer)["accepted"]
                else:
                    failures.append(response.status)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    print(json.dumps({
        "records": len(lines), "accepted": accepted[0], "failures": len(failures),
        "seconds": round(seconds, 2), "rate": round(len(lines) / seconds),
        "batches": len(latencies), "p50_ms": round(pick(0.5), 1), "p99_ms": round(pick(0.99), 1),
        "max_ms": round(latencies[-1] * 1000, 1),
    }))


if __name__ == "__main__":
    main()
