// OkoLoader: placeholder until the module lands.
