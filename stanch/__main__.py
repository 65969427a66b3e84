from stanch.ops.entry import main

main()
