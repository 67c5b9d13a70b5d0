from ringctl.app import main

main()
