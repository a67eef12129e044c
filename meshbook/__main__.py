"""`python -m meshbook` is the `meshbook` command."""

from meshbook.cli import console

console()
