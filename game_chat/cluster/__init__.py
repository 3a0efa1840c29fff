"""One chat across many server processes, on Redis/Valkey (docs/SCALING.md).

Work in progress: the building blocks (room streams, presence) are here and tested against a
real server; ``run_server.py --cluster`` does not use them yet."""
