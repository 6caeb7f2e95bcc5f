"""recommenders/batch"""
