"""`ailive init`: a show file drafted from what the desk and JACK say."""
