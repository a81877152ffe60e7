// OkoVerifier: placeholder until the module lands.
