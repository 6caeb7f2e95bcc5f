"""recommenders/hybrid"""
