from qcc.cli.main import main

main()
