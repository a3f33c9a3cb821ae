from boeflow.cli import main

main()
