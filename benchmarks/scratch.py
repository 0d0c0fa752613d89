"""A scratch schema in the benchmark database with the project's tables, dropped afterwards."""

from __future__ import annotations

import os

from sqlalchemy import text

from core.db import init_db, make_engine
from etl.settings import load_settings


class Scratch:
    """`with Scratch(args.database_url, "name") as scratch:` (the URL of the benchmark's --database-url)
    gives `scratch.url` (a URL string whose connections see only the scratch schema), `scratch.settings`
    and `scratch.engine`."""

    def __init__(self, base, name: str):
        self.base, self.schema = base, f"bench_{name}_{os.getpid()}"
        self.admin = make_engine(load_settings(database_url=base.render_as_string(hide_password=False)))

    def __enter__(self):
        with self.admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {self.schema}"))
        url = self.base.update_query_dict({"options": f"-csearch_path={self.schema}"})
        self.url = url.render_as_string(hide_password=False)
        self.settings = load_settings(database_url=self.url)
        self.engine = make_engine(self.settings)
        init_db(self.engine)
        return self

    def __exit__(self, *_):
        self.engine.dispose()
        with self.admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {self.schema} CASCADE"))
        self.admin.dispose()
