// OkoHTTP: placeholder until the module lands.
