"""recommenders/models"""
