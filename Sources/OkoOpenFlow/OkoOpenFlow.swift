// OkoOpenFlow: placeholder until the module lands.
