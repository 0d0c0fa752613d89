"""Elastic Beanstalk looks for `application` in `application.py`."""

from flask_back_end import create_app

application = create_app()
