"""Elastic Beanstalk (and gunicorn: `gunicorn flask_back_end.application:application`) look for
`application` in `application.py`."""

import gc

from flask_back_end import create_app

application = create_app()
# Everything imported so far lives as long as the process: take it out of the garbage collector's full
# passes, which otherwise walk pandas', NumPy's and SQLAlchemy's objects every few thousand
# allocations — a 45 ms stall in one map answer in ten (benchmarks/bench_api.py: p95 47 → ~10 ms).
gc.freeze()
