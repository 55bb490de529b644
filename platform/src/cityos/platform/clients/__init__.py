"""OAuth client administration (scope `clients:admin`) over the `AuthServer` port."""
