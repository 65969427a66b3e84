from stanch.cli import app

app()
