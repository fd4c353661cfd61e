"""Access decisions: does this code open this door now?"""
