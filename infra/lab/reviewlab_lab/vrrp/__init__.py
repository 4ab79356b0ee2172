"""A floating address shared by a pair through VRRP: the segment it moves on, keepalived."""
