from surveybot.cli import main

main()
