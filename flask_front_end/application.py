"""Elastic Beanstalk (and gunicorn: `gunicorn flask_front_end.application:application`) look for
`application` in `application.py`."""

import gc

from flask_front_end import create_app

application = create_app()
gc.freeze()  # start-up objects out of the collector's full passes (see flask_back_end/application.py)
