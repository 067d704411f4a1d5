from consortium.cli.main import cli

cli()
