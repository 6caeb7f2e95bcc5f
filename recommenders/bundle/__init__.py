"""recommenders/bundle"""
