"""``surveybot token …``: access tokens for coordinators, partner networks and researchers."""

from __future__ import annotations

import click

from surveybot import tokens
from surveybot.cli.common import Context, json_option, pass_context, print_json
from surveybot.clock import utcnow


@click.group()
def token() -> None:
    """Create, list and revoke access tokens (for uploads and the web pages)."""


@token.command()
@click.option(
    "--role", required=True, type=click.Choice(tokens.ROLES, case_sensitive=False), help="What the token may do."
)
@click.option("--network", help="For a network token: the one network whose contacts it may upload and read.")
@click.option(
    "--email",
    help="For a researcher's token: the researcher's e-mail; the token then shows only "
    "the interviews of that researcher's slots.",
)
@click.option("--label", default="", help="A note for yourself (who has it).")
@json_option
@pass_context
def create(obj: Context, role: str, network: str | None, email: str | None, label: str, as_json: bool) -> None:
    """Create a token. It is shown once: pass it on now (it is stored only as a hash)."""
    role = role.lower()
    token_id, value = tokens.create(obj.new_db, role, network, utcnow(), label, email=email)
    email = next(t["email"] for t in tokens.list_tokens(obj.new_db) if t["id"] == token_id)
    if as_json:
        print_json({"id": token_id, "role": role, "network": network, "email": email, "token": value})
        return
    click.echo(value)
    holder = f" for {network}" if network else (f" for {email}" if email else "")
    click.echo(
        f"(token {token_id}, {role}{holder}; shown once — revoke it with 'surveybot token revoke {token_id}')", err=True
    )


@token.command("list")
@json_option
@pass_context
def list_(obj: Context, as_json: bool) -> None:
    """List tokens (never their values)."""
    rows = tokens.list_tokens(obj.db)
    if as_json:
        print_json({"tokens": rows})
        return
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        click.echo(
            f"{row['id']:>4}  {row['role']:<12} {row['network'] or row['email'] or '-':<20} {state:<32} {row['label']}"
        )


@token.command()
@click.argument("token_id", type=int)
@pass_context
def revoke(obj: Context, token_id: int) -> None:
    """Revoke token TOKEN_ID: it stops working at once."""
    tokens.revoke(obj.db, token_id, utcnow())
    click.echo(f"Revoked token {token_id}.")
