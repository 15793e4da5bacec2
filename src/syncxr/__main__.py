from syncxr.cli import main

main()
