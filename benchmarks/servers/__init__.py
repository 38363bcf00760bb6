"""The servers compared with ours. Each runs on a free loopback port, started by the harness."""
