from summon.cli.main import main

main()
