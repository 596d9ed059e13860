"""SQL evasions through pg-proxy and mysql-proxy (embedded agent-safe policy) against real
PostgreSQL 15 and MariaDB, as a hostile agent would send them: session-dependent lexing, bodies
that run later, forms a token scan misses, hidden DELETEs, role changes, MySQL/MariaDB comment
forms. Every effect is checked on the server itself, not through the proxy."""
import subprocess

import psycopg
import pymysql
import pytest

from test_mysql import mysql_cli
from test_postgres import psql


def direct_pg(postgres):
    return psycopg.connect(host="127.0.0.1", port=postgres["port"], user=postgres["user"],
                           password=postgres["password"], dbname="postgres", autocommit=True)


@pytest.fixture()
def victim(postgres):
    """A table with three rows, created (again) directly on the server."""
    with direct_pg(postgres) as c:
        c.execute("DROP TABLE IF EXISTS victim CASCADE")
        c.execute("CREATE TABLE victim (id int)")
        c.execute("INSERT INTO victim VALUES (1), (2), (3)")
        c.execute("DROP FUNCTION IF EXISTS evil() CASCADE")
        c.execute("DROP FUNCTION IF EXISTS rf(text) CASCADE")
    yield
    with direct_pg(postgres) as c:
        c.execute("DROP TABLE IF EXISTS victim CASCADE")


def pg_state(postgres):
    """What the evasions try to change, read on the server."""
    with direct_pg(postgres) as c:
        exists = c.execute("SELECT to_regclass('public.victim') IS NOT NULL").fetchone()[0]
        rows = c.execute("SELECT count(*) FROM victim").fetchone()[0] if exists else None
        funcs = c.execute("SELECT count(*) FROM pg_proc WHERE proname IN ('evil', 'rf')").fetchone()[0]
        rules = c.execute("SELECT count(*) FROM pg_rules WHERE rulename = 'r_evil'").fetchone()[0]
    return {"victim": exists, "rows": rows, "functions": funcs, "rules": rules}


UNCHANGED = {"victim": True, "rows": 3, "functions": 0, "rules": 0}

PG_EVASIONS = {
    "lexing: standard_conforming_strings off in the same string": [
        "SET standard_conforming_strings = off; SELECT 'a\\' b '; DROP TABLE victim; -- '"],
    "lexing: standard_conforming_strings off, then the statement": [
        "SET standard_conforming_strings = off", "SELECT 'a\\' b '; DROP TABLE victim; -- '"],
    "lexing: set_config, then the statement": [
        "SELECT set_config('standard_conforming_strings', 'off', false)",
        "SELECT 'a\\' b '; DELETE FROM victim; -- '"],
    "body: SQL function": ["CREATE FUNCTION evil() RETURNS void LANGUAGE sql AS 'DROP TABLE victim'",
                           "SELECT evil()"],
    "body: BEGIN ATOMIC": ["CREATE FUNCTION evil() RETURNS int LANGUAGE sql BEGIN ATOMIC DELETE FROM victim; "
                           "SELECT 1; END", "SELECT evil()"],
    "body: PL/pgSQL": ["CREATE FUNCTION evil() RETURNS void LANGUAGE plpgsql AS $$ BEGIN TRUNCATE victim; END $$",
                       "SELECT evil()"],
    "body: DO with an escaped EXECUTE string": ["DO $$ BEGIN EXECUTE E'SELECT 1\\x3b DROP TABLE victim'; END $$"],
    "body: DO with a built EXECUTE string": ["DO $$ BEGIN EXECUTE 'DROP TABLE ' || 'victim'; END $$"],
    "body: rule": ["CREATE RULE r_evil AS ON INSERT TO victim DO ALSO DELETE FROM victim"],
    "body: internal function": ["CREATE FUNCTION rf(text) RETURNS text LANGUAGE internal AS 'pg_read_file_v2'"],
    "hidden delete: writable CTE": ["WITH x AS (DELETE FROM victim RETURNING *) SELECT count(*) FROM x"],
    "hidden delete: CTE in a subquery position": [
        "WITH x AS (DELETE FROM victim RETURNING id) SELECT (SELECT max(id) FROM x)"],
    "unbounded: WHERE true": ["DELETE FROM victim WHERE true"],
    "unbounded: WHERE of a subquery": ["DELETE FROM victim WHERE EXISTS (SELECT 1 FROM pg_class WHERE oid > 0)"],
    "drop: ALTER TABLE DROP COLUMN": ["ALTER TABLE victim DROP COLUMN id"],
    "prepare: PREPARE then EXECUTE": ["PREPARE p AS DELETE FROM victim", "EXECUTE p"],
    "explain analyze runs the statement": ["EXPLAIN ANALYZE DELETE FROM victim"],
}


@pytest.mark.parametrize("name", list(PG_EVASIONS))
def test_postgres_evasions_have_no_effect(postgres, pg_proxy, victim, name):
    r = psql(postgres, pg_proxy, *PG_EVASIONS[name], "SELECT 'still here'")
    assert "still here" in r.stdout, (name, r.stdout, r.stderr)  # the connection stayed usable
    assert "sluice:" in r.stderr, (name, r.stderr)
    assert pg_state(postgres) == UNCHANGED, (name, r.stdout, r.stderr)


READS = [
    "TABLE pg_authid",
    "(TABLE pg_authid)",
    "SELECT a.rolpassword FROM pg_roles r, pg_authid a WHERE a.oid = r.oid",
    "SELECT * FROM U&\"pg_\\0061uthid\"",
    "SELECT query_to_xml('select rolpassword from pg_authid', true, true, '')",
    "SELECT table_to_xml('pg_authid', true, true, '')",
    "COPY (SELECT rolpassword FROM pg_authid) TO STDOUT",
    "SELECT \"pg_read_file\"('/proc/self/environ')",
    "SELECT pg_catalog.pg_read_file('/proc/self/environ')",
]


@pytest.mark.parametrize("q", READS)
def test_postgres_secret_reads_are_refused(postgres, pg_proxy, q):
    r = psql(postgres, pg_proxy, q, "SELECT 'still here'")
    assert "sluice: denied" in r.stderr, (q, r.stderr)
    assert "SCRAM-SHA-256$" not in r.stdout and "md5" not in r.stdout and "PATH=" not in r.stdout, r.stdout
    assert "still here" in r.stdout


ROLE_CHANGES = [
    "SET ROLE pg_read_server_files",
    "BEGIN; SET LOCAL ROLE pg_read_server_files; SELECT current_user; COMMIT",
    "SET \"role\" = 'pg_read_server_files'",
    "SELECT set_config('role', 'pg_read_server_files', false)",
    "SET SESSION AUTHORIZATION pg_read_server_files",
]


@pytest.mark.parametrize("q", ROLE_CHANGES)
def test_postgres_role_changes_need_approval(postgres, pg_proxy, q):
    r = psql(postgres, pg_proxy, q, "SELECT current_user")
    assert "sluice: approval required" in r.stderr, (q, r.stderr)
    assert "pg_read_server_files" not in r.stdout, r.stdout


def test_postgres_client_encoding_without_utf8_reads_ascii_only(postgres, pg_proxy):
    env_sql = "SET client_encoding = 'SJIS'"
    r = psql(postgres, pg_proxy, env_sql, "SELECT 'caf\u00e9'", "SELECT 'plain ascii'")
    assert "client_encoding is SJIS" in r.stderr, r.stderr
    assert "plain ascii" in r.stdout, r.stdout


# ---- MariaDB ------------------------------------------------------------------------------------

def direct_my(mariadb):
    return pymysql.connect(host="127.0.0.1", port=mariadb["port"], user=mariadb["user"],
                           password=mariadb["password"], database="app", autocommit=True)


@pytest.fixture()
def my_victim(mariadb):
    c = direct_my(mariadb)
    with c.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS victim")
        cur.execute("CREATE TABLE victim (id int)")
        cur.execute("INSERT INTO victim VALUES (1), (2), (3)")
    c.close()


def my_rows(mariadb):
    c = direct_my(mariadb)
    with c.cursor() as cur:
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'app' "
                    "AND table_name = 'victim'")
        if cur.fetchone()[0] == 0:
            return None
        cur.execute("SELECT count(*) FROM victim")
        n = cur.fetchone()[0]
    c.close()
    return n


MY_EVASIONS = [
    "SELECT 1--1; DROP TABLE victim",
    "/*!50000 DROP TABLE victim */",
    "/*M!100000 DROP TABLE victim */",
    "SELECT 1 /*!50000 , (SELECT 1) */; /*!DELETE FROM victim*/",
    "SET STATEMENT max_statement_time=100 FOR DROP TABLE victim",
    "SET STATEMENT max_statement_time=100 FOR DELETE FROM victim",
    "SET sql_mode = 'NO_BACKSLASH_ESCAPES'; SELECT 'a\\\\'; DROP TABLE victim; -- '",
    "SET @@session.sql_mode = 'ANSI_QUOTES'",
    "SET NAMES gbk",
    "CREATE PROCEDURE evil() DROP TABLE victim; CALL evil()",
    "CREATE EVENT evil ON SCHEDULE AT CURRENT_TIMESTAMP DO DELETE FROM victim",
    "PREPARE s FROM 'DROP TABLE victim'; EXECUTE s",
    "SELECT * FROM victim INTO OUTFILE '/tmp/sluice-evasion-out'",
]


@pytest.mark.parametrize("q", MY_EVASIONS)
def test_mariadb_evasions_have_no_effect(mariadb, mysql_proxy, my_victim, q):
    r = mysql_cli(mariadb, mysql_proxy, q + "; SELECT 'still here'")
    assert "sluice:" in r.stderr, (q, r.stderr)
    assert my_rows(mariadb) == 3, (q, r.stdout, r.stderr)


@pytest.mark.parametrize("param", ["options='-c role=pg_read_server_files'",
                                   "options='-csession_authorization=pg_read_server_files'"])
def test_postgres_startup_role_needs_approval(postgres, pg_proxy, param):
    conninfo = f"host=127.0.0.1 port={pg_proxy.port} user={postgres['user']} dbname=postgres {param}"
    r = subprocess.run(["psql", "-X", "-A", "-t", conninfo, "-c", "SELECT current_user"], capture_output=True,
                       text=True, env={"PATH": "/usr/bin:/bin", **postgres["env"]}, timeout=60)
    assert "changes the role" in r.stderr, r.stderr
    assert "pg_read_server_files" not in r.stdout, r.stdout


@pytest.fixture()
def creds(postgres):
    from conftest import synthetic_stripe_key
    key = synthetic_stripe_key()
    with direct_pg(postgres) as c:
        c.execute("DROP TABLE IF EXISTS credentials")
        c.execute("CREATE TABLE credentials (id int primary key, service text, secret text)")
        c.execute("INSERT INTO credentials VALUES (1, 'billing', %s)", (key,))
    yield key
    with direct_pg(postgres) as c:
        c.execute("DROP TABLE IF EXISTS credentials")


SECRET_COMPUTATIONS = [
    "SELECT reverse(secret) FROM credentials",
    "SELECT substr(secret, 1, 12), substr(secret, 13) FROM credentials",
    "SELECT encode(secret::bytea, 'base64') FROM credentials",
    "SELECT id FROM credentials WHERE secret LIKE 'sk\\_%'",
    "SELECT id FROM credentials WHERE substr(secret, 1, 1) = 's'",
    "SELECT row_to_json(c) FROM credentials c",
    "SELECT x FROM (SELECT secret AS x FROM credentials) s",
    "SELECT secret FROM credentials ORDER BY 1",
    "SELECT string_agg(secret, '') FROM credentials",
]


@pytest.mark.parametrize("q", SECRET_COMPUTATIONS)
def test_postgres_computation_on_secret_columns_is_refused(postgres, pg_proxy, creds, q):
    r = psql(postgres, pg_proxy, q)
    assert "sluice: denied: computing on a secret column" in r.stderr, (q, r.stderr)
    assert creds not in r.stdout and creds[::-1] not in r.stdout and creds[:12] not in r.stdout, r.stdout


def test_postgres_secret_column_read_bare_comes_back_masked(postgres, pg_proxy, creds):
    r = psql(postgres, pg_proxy, "SELECT id, service, secret FROM credentials WHERE id = 1", check=True)
    assert "1|billing|[REDACTED:" in r.stdout, r.stdout
    assert creds not in r.stdout
