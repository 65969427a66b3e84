from stanch.cli import main

main()
