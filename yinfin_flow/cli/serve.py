"""``yinfin-flow serve``: the Flask development server on the standalone app.

For production use gunicorn: ``gunicorn -w 4 -b 0.0.0.0:8000 'yinfin_flow.app:create_app()'``.
"""

from __future__ import annotations

import click


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to listen on")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--debug/--no-debug", default=False, help="reloader and debugger (never in production)")
def command(host: str, port: int, debug: bool) -> None:
    """Serve the API (development server) on HOST:PORT, database from YINFIN_DATABASE_URL."""
    from yinfin_flow.app import create_app
    from yinfin_flow.config import ConfigError
    from yinfin_flow.domain.errors import DomainError
    from yinfin_flow.worker.runner import start_for_app

    try:
        app = create_app()
    except ConfigError as err:
        raise click.ClickException(str(err)) from err
    except DomainError as err:  # a bad YINFIN_OUTBOX_* value: name it instead of a traceback
        raise click.ClickException(err.message) from err
    st = app.extensions["yinfin_flow"]
    if st.settings.production:
        click.echo("warning: the Flask development server is not for production; use gunicorn "
                   "'yinfin_flow.app:create_app()'", err=True)
    click.echo(f"yinfin-flow console on http://{host}:{port}/ , API on http://{host}:{port}/api/v1 "
               f"(docs: /api/v1/docs), database {st.db.engine.url.render_as_string(hide_password=True)}")
    # without Redis, outbox delivery and approval timers run in a thread of this process
    start_for_app(app)
    app.run(host=host, port=port, debug=debug, use_reloader=debug)
