// OkoAPI: placeholder until the module lands.
