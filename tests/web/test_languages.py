"""Every page and mail of the dashboard in each of its six languages (issue 33): the catalogues hold
exactly what the code marks, every message translated with its placeholders, and compiled as committed;
each page, chosen by the browser (Accept-Language) or by the account's setting, says `lang` right and
holds no English message id, nor any English words the English page has and it shares (a string nobody
marked); the mails the dashboard sends come in the asker's or the account's language."""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from flask import url_for
from sqlalchemy import select, update

from core import answers, i18n, links
from core.schema import anomalies, sensor_health, sensor_wow, sensors, users, wow_sites
from core.vocabulary import SENSOR_VARIABLES, AnomalyKind
from etl import notify_owners
from etl.archive import archive
from flask_back_end import create_app as create_back_end
from flask_back_end.settings import load_settings as back_end_settings
from flask_front_end import accounts, statuses, words
from flask_front_end import create_app as create_front_end
from flask_front_end.settings import load_settings
from tests.catalogues import TRANSLATED, catalogue, english_left, forms, placeholders, template
from tests.factories import TOKEN, seed
from tests.web.test_front_end import PASSWORD, csrf_token, log_in

# Many pages, mails and accounts on both engines: `make test` and CI run these; `make test-fast` not.
pytestmark = pytest.mark.slow

ROOT = i18n.LOCALE_DIR.parents[1]
LINK_SECRET = "test-secret-for-links-in-mails"
# The keywords `make translations` extracts with (its BABEL_KEYWORDS), beside gettext's own.
KEYWORDS = {**DEFAULT_KEYWORDS, "lazy_gettext": None, "lazy_ngettext": (1, 2)}


# --- the catalogues --------------------------------------------------------------------------------------
def extracted() -> set:
    """What the code marks today, extracted as `make translations` does (babel.cfg)."""
    with open(ROOT / "babel.cfg") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found = extract_from_dir(
        str(ROOT), method_map, options_map, KEYWORDS, directory_filter=lambda path: marks_words(Path(path))
    )
    return {message for _, _, message, _, _ in found if message}


def marks_words(folder: Path) -> bool:
    """Only the packages whose words people read are walked (not var/, which may hold whole venvs)."""
    return folder == ROOT or folder.relative_to(ROOT).parts[0] in {"core", "etl", "flask_front_end"}


def test_the_template_holds_exactly_what_the_code_marks_and_so_does_every_catalogue():
    """A word marked and not extracted (or extracted and no longer marked): run `make translations`."""
    marked = {forms(message) for message in extracted()}
    assert {forms(message.id) for message in template() if message.id} == marked
    for language in TRANSLATED:
        assert {forms(message.id) for message in catalogue(language) if message.id} == marked, language
    assert len(marked) > 350


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated_and_keeps_its_placeholders(language):
    for message in catalogue(language):
        if not message.id:
            continue
        ids, strings = forms(message.id), forms(message.string)
        assert "fuzzy" not in message.flags and all(strings), (language, message.id)
        # One form for one and one for more (all six languages count so); a counted message's first form
        # may leave the number out ("a sensor needs a look").
        assert len(strings) == len(ids), (language, message.id)
        for english, said in zip(ids, strings):
            assert placeholders(said) == placeholders(english) or (
                len(ids) == 2 and english == ids[0] and placeholders(said) <= placeholders(ids[1])
            ), (language, english, said)
            assert said.count("%%") == english.count("%%"), (language, english, said)


@pytest.mark.parametrize("language", TRANSLATED)
def test_each_committed_mo_is_its_po_compiled(language):
    """A fresh clone works without a build step, so the .mo files are committed: each must be what
    `pybabel compile` makes of its .po (forgot `make translations`? this fails)."""
    compiled = io.BytesIO()
    write_mo(compiled, catalogue(language))
    committed = (i18n.LOCALE_DIR / language / "LC_MESSAGES" / f"{i18n.DOMAIN}.mo").read_bytes()
    assert committed == compiled.getvalue(), f"run `make translations`: {language}'s .mo is not its .po"


def test_every_word_of_the_vocabulary_the_pages_and_mails_show_is_in_the_catalogue():
    """The kinds, their meanings, the variables, the statuses and the advice are marked where they are
    defined: a new one fails here until it is (core.i18n.N_) and translated."""
    ids = {forms(message.id)[0] for message in template() if message.id}
    wanted = [kind.label for kind in AnomalyKind] + [kind.meaning for kind in AnomalyKind]
    wanted += [variable.label for variable in SENSOR_VARIABLES.values()]
    wanted += [str(look.label) for look in statuses.LOOKS]  # outside a request: English, the message id
    wanted += [
        *notify_owners.ADVICE.values(),
        notify_owners.DAMAGED,
        notify_owners.SILENT,
        notify_owners.LOOK,
    ]
    wanted += list(notify_owners.STATUS_WORDS.values())
    assert [word for word in wanted if word not in ids] == []


@pytest.mark.parametrize("language", [*TRANSLATED, "xx", None])
def test_the_nightly_job_reads_a_catalogue_without_flask(language):
    words_of = i18n.translations(language)
    said = words_of.gettext("Why: %(reason)s")
    if language in TRANSLATED:
        assert said != "Why: %(reason)s" and "%(reason)s" in said
    else:  # a language we do not speak, or none chosen: English
        assert said == "Why: %(reason)s"


# --- every page, in each language ------------------------------------------------------------------------
@pytest.fixture
def cheap_scrypt(monkeypatch):
    real = accounts.generate_password_hash

    def cheap(password, method="scrypt", salt_length=16):
        return real(
            password, method="scrypt:1024:8:1" if method == "scrypt" else method, salt_length=salt_length
        )

    monkeypatch.setattr(accounts, "generate_password_hash", cheap)


@pytest.fixture
def database_url(tmp_path):
    """SQLite only: the sweeps read what pages and mails say, which no engine changes (the pages' data on
    PostgreSQL is tested in tests/web/test_front_end.py)."""
    return f"sqlite:///{tmp_path / 'grow_wow.sqlite'}"


@pytest.fixture
def site(settings, engine, serve, cheap_scrypt, smtp_server, tmp_path):
    """The front end on the seeded database with mail on loopback, an admin, an owner and an unclaimed
    account, an answer and a pause on s1 (so the sensor page shows all it can)."""
    seed(engine)
    archive(
        engine, tmp_path, dt.datetime(2019, 6, 20, tzinfo=dt.UTC), 3, "CC BY 4.0"
    )  # the archive page's days
    url = settings.database_url.get_secret_value()
    back_end = serve(create_back_end(back_end_settings(database_url=url, backend_token=TOKEN)))
    port, inbox = smtp_server
    app = create_front_end(
        load_settings(
            database_url=url,
            backend_url=back_end,
            backend_token=TOKEN,
            frontend_secret_key="test-secret-key-for-sessions",
            session_cookie_secure=False,
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
            mail_link_secret=LINK_SECRET,
            dashboard_url="https://grow-wow.example.org",
            archive_dir=str(tmp_path),
        )
    )
    accounts.create_user(engine, "ada", PASSWORD, "admin", email="ada@example.org")
    accounts.create_user(engine, "olive", PASSWORD, "owner", owner_id="owner-a", email="olive@example.org")
    accounts.sign_up(engine, "new.owner@example.org", PASSWORD)
    with engine.begin() as connection:
        spike = connection.execute(select(anomalies).where(anomalies.c.kind == "spike")).mappings().one()
        when = spike["start_at"]
        answers.record_answer(connection, dict(spike), "not_a_fault", "watering", "hose", None, "olive", when)
        today = dt.datetime.now(dt.UTC)  # a pause not over yet: its page offers to end it
        answers.add_pause(
            connection, "s1", today, today + dt.timedelta(days=30), "holiday", None, "olive", today
        )
    return app, engine, inbox


def ids(engine) -> dict:
    with engine.connect() as connection:
        rows = connection.execute(
            select(users.c.username, users.c.user_id, users.c.password_hash, users.c.email)
        )
        return {row.username: row for row in rows}


def link_pages(engine) -> dict[str, str]:
    """The pages opened from a mail's link, each with a genuine token, and one whose token is not."""
    olive = ids(engine)["olive"]
    fits = accounts.fingerprint(olive.password_hash, olive.email)

    def signed(purpose, payload):
        return links.sign(LINK_SECRET, purpose, payload)

    change = {"user": olive.user_id, "was": olive.email, "new_email": "olive@example.net"}
    return {
        "signup.confirm": f"/signup/confirm/{signed(links.Purpose.CONFIRM, {'email': 'x@example.org'})}",
        "reset.choose": f"/reset/{signed(links.Purpose.RESET, {'user': olive.user_id, 'fingerprint': fits})}",
        "account.confirm_address": f"/account/address/{signed(links.Purpose.CONFIRM, change)}",
        "unsubscribe.page": f"/unsubscribe/{signed(links.Purpose.UNSUBSCRIBE, {'user': olive.user_id})}",
        "a link that no longer works": "/reset/not-a-token",
    }


# Who opens which page (an endpoint, or a path for a page no route names), and the routes that are not
# pages: JSON for the scripts, downloads, the health check, a redirect.
SIGNED_IN = {
    "ada": [
        "pages.home",
        "pages.all_grow_map",
        "pages.owner_map",
        "pages.sensor_page",
        "account.page",
        "claim.page",
        "archive.page",
    ],
    "olive": [
        "pages.home",
        "pages.all_grow_map",
        "pages.owner_map",
        "pages.sensor_page",
        "account.page",
        "claim.page",
    ],
    "new.owner@example.org": ["claim.page", "account.page"],
}
PUBLIC = ["auth.login", "signup.ask", "reset.ask", "/no-such-page"]
NOT_PAGES = {"static", "auth.health", "pages.open_sensor", "pages.readings_csv", "pages.anomalies_csv"}
NOT_PAGES |= {"pages.autocomplete_2019", "archive.day_file", "archive.beside"}  # downloads


def path_of(app, page: str) -> str:
    if page.startswith("/"):
        return page
    with app.test_request_context():
        return url_for(page, **({"sensor_id": "s1"} if page == "pages.sensor_page" else {}))


def test_the_language_sweep_opens_every_page_of_the_dashboard(site):
    app, engine, _ = site
    swept = set(PUBLIC) | set(link_pages(engine)) | {page for pages in SIGNED_IN.values() for page in pages}
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and rule.endpoint not in NOT_PAGES and not rule.rule.startswith("/data/"):
            assert rule.endpoint in swept, f"add {rule.endpoint} to the language sweep"


def sweep(site, language: str, browser: str, by_account: bool) -> dict[str, str]:
    """Every page as `browser` asks (Accept-Language); with `by_account`, the accounts chose `language`."""
    app, engine, _ = site
    if by_account:
        with engine.begin() as connection:
            connection.execute(update(users).values(language=language))
    header = {"Accept-Language": browser}
    pages = {}
    for page in PUBLIC:
        pages[page] = app.test_client().get(path_of(app, page), headers=header).get_data(as_text=True)
    for page, path in link_pages(engine).items():
        pages[page] = app.test_client().get(path, headers=header).get_data(as_text=True)
    for username, seen in SIGNED_IN.items():
        client = app.test_client()
        assert log_in(client, username).status_code == 302
        for page in seen:
            answer = client.get(path_of(app, page), headers=header)
            assert answer.status_code == 200, (username, page)
            pages[f"{username} {page}"] = answer.get_data(as_text=True)
    return pages


def stored_words(engine) -> tuple[str, ...]:
    """What the pages show from the database as it was stored: names, addresses, and the reasons and
    explanations detection wrote in English (a known limit: they stay English)."""
    found = []
    with engine.connect() as connection:
        for column in (
            sensors.c.owner_id,
            sensors.c.name,
            sensors.c.address,
            sensor_health.c.reason,
            anomalies.c.explanation,
            wow_sites.c.name,
            sensor_wow.c.reason,
        ):
            found += [value for value in connection.scalars(select(column)) if value]
        found += [value for value in connection.scalars(select(users.c.email)) if value]
    return (*found, "hose", "holiday", "x@example.org", "olive@example.net")


class Texts(HTMLParser):
    """A page's visible words: its text, and the attributes a person reads or hears (title, labels,
    placeholders); not scripts' data, nor what differs between two loads (a form's token)."""

    READ = frozenset({"title", "aria-label", "placeholder", "alt"})

    def __init__(self):
        super().__init__()
        self.texts = set()
        self.hidden = None  # inside <style> or <script>: not read

    def handle_starttag(self, tag, attrs):
        self.texts |= {" ".join(value.split()) for name, value in attrs if name in self.READ and value}
        if tag in ("style", "script"):
            self.hidden = tag

    def handle_endtag(self, tag):
        if tag == self.hidden:
            self.hidden = None

    def handle_data(self, data):
        if data.strip() and not self.hidden:
            self.texts.add(" ".join(data.split()))


def texts(page: str) -> set[str]:
    parser = Texts()
    parser.feed(page)
    return parser.texts


ENGLISH_WORDS = re.compile(r"[A-Za-z]{2,}[ ,;:.?!]+[A-Za-z]{2,}")
# Shown as they are in every language: proper names, each language's own name, and the brand.
SAME_IN_EVERY_LANGUAGE = {"GROW Observatory", "Weather Observations Website (WOW)", *i18n.LANGUAGES.values()}


def unmarked(english: str, page: str, data: tuple[str, ...]) -> set[str]:
    """Words of the English page that the translated one shows unchanged: a string nobody marked."""
    known = sorted({" ".join(item.split()) for item in data} | SAME_IN_EVERY_LANGUAGE, key=len, reverse=True)

    def words_left(text: str) -> str:
        for item in known:
            text = text.replace(item, " ")
        return text

    return {text for text in texts(english) & texts(page) if ENGLISH_WORDS.search(words_left(text))}


def script_words(page: str) -> list[str]:
    """The words a page hands its scripts: every phrase of `data-words`, and the statuses' labels (not
    the vocabulary's identifiers the JSON also holds, such as "recovered")."""

    def values(item) -> list[str]:
        if isinstance(item, dict):
            return [text for value in item.values() for text in values(value)]
        if isinstance(item, list):
            return [text for value in item for text in values(value)]
        return [item]

    def attribute(name: str):
        found = re.search(rf'{name}="([^"]*)"', page)
        return json.loads(html.unescape(found.group(1))) if found else {}

    return values(attribute("data-words")) + [
        look["label"] for look in attribute("data-statuses").get("looks", [])
    ]


def check(pages: dict[str, str], english: dict[str, str], language: str, data) -> None:
    for page, body in pages.items():
        assert re.search(rf'<html lang="{language}">', body), (language, page)
        if language == i18n.SOURCE:
            continue
        assert english_left("\n".join(texts(body)), language, data) == [], (language, page)
        assert english_left("\n".join(script_words(body)), language, data) == [], (language, page)
        assert unmarked(english[page], body, data) == set(), (language, page)


@pytest.fixture
def english(site):
    return sweep(site, "en", "en", by_account=False)


@pytest.mark.parametrize("language", list(i18n.LANGUAGES))
def test_every_page_speaks_the_language_the_browser_asks_for(site, english, language):
    browser = {"el": "el-GR,el;q=0.9,en;q=0.5", "fr": "fr-CH, fr;q=0.9, en;q=0.8"}.get(language, language)
    check(sweep(site, language, browser, by_account=False), english, language, stored_words(site[1]))


@pytest.mark.parametrize("language", list(i18n.LANGUAGES))
def test_every_page_speaks_the_language_the_account_chose_over_the_browsers(site, english, language):
    """A logged-in account's pages, and the pages its mails' links open, follow its setting whatever
    the browser asks; a stranger's pages (the login page) follow the browser."""
    other = "de" if language != "de" else "it"
    pages = sweep(site, language, other, by_account=True)
    strangers = {*PUBLIC, "signup.confirm", "reset.choose", "a link that no longer works"}
    theirs = {page: body for page, body in pages.items() if page not in strangers}
    check(theirs, english, language, stored_words(site[1]))
    assert all(f'<html lang="{other}">' in pages[page] for page in strangers)


def test_an_unknown_or_absent_language_is_english(site):
    app, _, _ = site
    for header in ({"Accept-Language": "pt-BR, ja;q=0.8"}, {}):
        page = app.test_client().get("/login", headers=header).get_data(as_text=True)
        assert '<html lang="en">' in page and "Stay logged in on this computer" in page


def test_the_account_page_offers_each_language_by_its_own_name_and_saying_so_speaks_the_new_one(site):
    app, _, _ = site
    client = app.test_client()
    log_in(client, "olive")
    page = client.get("/account").get_data(as_text=True)
    assert all(
        f'<option value="{code}">{name}</option>' in page
        for code, name in i18n.LANGUAGES.items()
        if code != "en"
    )
    form = {
        "alerts": "y",
        "alert_schedule": "nightly",
        "language": "el",
        "csrf_token": csrf_token(client, "/account"),
    }
    saved = client.post("/account/preferences", data=form, follow_redirects=True).get_data(as_text=True)
    assert '<html lang="el">' in saved and "Οι επιλογές σας αποθηκεύτηκαν." in saved
    assert '<option selected value="el">' in saved or 'value="el" selected' in saved


def test_the_page_scripts_get_their_words_from_the_page(site):
    """app.js, the maps and the charts spell no English: each page carries their words, translated, and
    the statuses' labels."""
    app, _, _ = site
    client = app.test_client()
    log_in(client, "ada")
    page = client.get("/sensors/s1", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    said = json.loads(html.unescape(re.search(r'data-words="([^"]+)"', page).group(1)))
    looks = json.loads(html.unescape(re.search(r'data-statuses="([^"]+)"', page).group(1)))["looks"]
    assert said["noAnomalies"] == "Aucune anomalie sur cette période."
    assert said["sensorsOnMap"] == ["%(count)s capteur sur la carte.", "%(count)s capteurs sur la carte."]
    assert said["kinds"]["spike"] == "pic" and said["variables"]["battery_level"] == "pile"
    assert {look["value"]: look["label"] for look in looks}["faulty"] == "Défectueux"
    with app.test_request_context(headers={"Accept-Language": "fr"}):
        assert set(words.for_scripts()) == set(said)
    for script in ("app.js", "all_grow_map.js", "owner_map.js", "sensor_map.js", "sensor_charts.js"):
        source = (ROOT / "flask_front_end" / "static" / script).read_text()
        # No sentence in quotes: English words a script would show (comments are not shown).
        code = "\n".join(line.split("//")[0] for line in source.splitlines())
        assert not re.findall(r"[\"'`][A-Z][a-z]+ [a-z]+[^\"'`]*[\"'`]", code), script


# --- the dashboard's mails, in each language ---------------------------------------------------------------
def ask_mail(client, path: str, email: str, language: str):
    token = csrf_token(client, path)
    answer = client.post(
        path, data={"email": email, "csrf_token": token}, headers={"Accept-Language": language}
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)


@pytest.mark.parametrize("language", list(i18n.LANGUAGES))
def test_the_dashboards_mails_come_in_the_askers_or_the_accounts_language(site, language):
    """A sign-up (new address or known), a reset for no account: the asker's browser's language. A
    reset for an account, and a change of address: the account's, whatever the browser."""
    app, engine, inbox = site
    with engine.begin() as connection:
        connection.execute(update(users).where(users.c.username == "olive").values(language=language))
    other = "de" if language != "de" else "it"
    ask_mail(app.test_client(), "/signup", "someone.new@example.org", language)
    ask_mail(app.test_client(), "/signup", "olive@example.org", language)
    ask_mail(app.test_client(), "/reset", "nobody.here@example.org", language)
    ask_mail(app.test_client(), "/reset", "olive@example.org", other)  # olive's own language wins
    olive = app.test_client()
    log_in(olive, "olive")
    form = {"email": "olive@example.net", "csrf_token": csrf_token(olive, "/account")}
    assert olive.post("/account/address", data=form, headers={"Accept-Language": other}).status_code == 302
    said = i18n.translations(language)
    expected = [
        said.gettext("Confirm your address for %(site)s") % {"site": "GROW–WOW"},
        said.gettext("You already have a %(site)s account") % {"site": "GROW–WOW"},
        said.gettext("About resetting a %(site)s password") % {"site": "GROW–WOW"},
        said.gettext("Reset your %(site)s password") % {"site": "GROW–WOW"},
        said.gettext("Confirm your new address for %(site)s") % {"site": "GROW–WOW"},
    ]
    assert [mail["Subject"] for _, mail in inbox.messages] == expected
    hours = said.ngettext("%(num)d hour", "%(num)d hours", 1) % {"num": 1}
    assert hours in inbox.messages[3][1].get_content()  # a reset link works for an hour
    for _, mail in inbox.messages:
        body = mail.get_content()
        assert body.startswith(said.gettext("Hello,")) and "https://grow-wow.example.org/" in body
        if language != i18n.SOURCE:
            assert english_left(f"{mail['Subject']}\n{body}", language) == [], mail["Subject"]
