from stanch.ops.cli import main

main()
