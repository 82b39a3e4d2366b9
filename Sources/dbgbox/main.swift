import DbgboxCommands

DbgboxMain.main()
